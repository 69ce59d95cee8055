"""Room tracks as hub paths: a participant's camera and microphone become ``rooms/{room}/{identity}``.

The publisher's packets (the top simulcast layer) go through the same RTP receivers as RTSP and
WHIP publishers (servers/rtp_ingest.py) into a Stream, so every hub output (HLS, RTMP, HTTP-FLV,
RTSP, WHEP, recording) works on room media without a second code path. Screen share and its
audio go to ``rooms/{room}/{identity}/screen``. The bridge is rebuilt when the set of tracks of
its group changes (a microphone added to a camera), since a Stream's tracks are fixed per publish.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..formats.rtp import codec_for_encoding
from ..formats.rtp.rtcp import SenderReport
from ..hub import Refused, Session, Stream
from ..servers.rtp_ingest import IngestMedia, RtpIngest

if TYPE_CHECKING:
    from ..hub import Hub
    from .room import PublishedTrack

log = logging.getLogger("streamhive.rooms")

#: Which bridge path a source joins: "" for the participant's main path, "screen" for its screen.
GROUPS = {"camera": "", "microphone": "", "screen": "screen", "screen_audio": "screen"}


def bridge_path(room: str, identity: str, group: str) -> str:
    return f"rooms/{room}/{identity}" + (f"/{group}" if group else "")


class Bridge:
    """One group of a participant's tracks published into one hub Stream."""

    def __init__(self, hub: Hub, path: str, tracks: list[PublishedTrack], remote: str) -> None:
        self.hub = hub
        self.path = path
        self.tracks = tracks
        self.session = Session("room", remote)
        self.stream: Stream | None = None
        self.ingest: RtpIngest | None = None
        self.index: dict[str, int] = {}

    async def start(self) -> None:
        medias: list[IngestMedia | None] = []
        for track in self.tracks:
            codec = codec_for_encoding(track.media.fmt.encoding)
            if codec is None:
                continue
            self.index[track.id] = len(medias)
            fmt = track.media.fmt
            medias.append(
                IngestMedia(track.id, codec, codec.track_from_sdp(fmt), fmt, track.media.payload_type)
            )
        if not medias:
            return
        try:
            stream = await self.hub.publish(self.path, self.session, trusted=True)
        except Refused as exc:
            log.info("room bridge %s not published: %s", self.path, exc)
            return
        self.stream = stream
        self.ingest = RtpIngest(stream, medias, reorder=True)
        self.session.request_keyframe = self.request_keyframe  # readers that lost packets ask
        log.info("room bridge %s: %s", self.path, ", ".join(t.id for t in self.tracks))

    def request_keyframe(self) -> None:
        """A keyframe of the layer the bridge carries (the top one) from each video track."""
        for track in self.tracks:
            if track.kind == "video":
                track.request_keyframe(len(track.layers) - 1)

    def rtp(self, track: PublishedTrack, packet: bytes, now: float) -> None:
        if self.ingest is not None and track.id in self.index:
            self.ingest.rtp(self.index[track.id], packet, now)

    def sender_report(self, track: PublishedTrack, report: SenderReport, now: float) -> None:
        if self.ingest is not None and track.id in self.index:
            self.ingest.sender_report(self.index[track.id], report, now)

    def stop(self) -> None:
        if self.stream is not None:
            self.hub.unpublish(self.stream, self.session, grace=0)
            self.stream = None
            self.ingest = None
