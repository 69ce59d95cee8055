"""A hub path published into a room: a "stream participant" (an RTMP camera in a meeting).

It is a hub Reader (like a WHEP player) whose frames the RTP muxer packetizes once; the packets
go through the same :class:`~streamhive.sfu.room.Publisher` as a browser's, so subscribers get
them with the same rewriting, NACK answers and keyframe waits. AAC becomes Opus through the
stream's transcoded view. Keyframe requests from subscribers go to the stream's publisher when it
can make one (WebRTC); others' subscribers wait for the next keyframe of the source.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from typing import Any

from ..formats.rtp import codec_for_track
from ..formats.rtp.muxer import RtpMuxer
from ..formats.rtp.rtcp import Fir, Pli, parse_compound
from ..hub import Reader, Session, Stream
from ..hub.frame import Track
from ..protocols.rtsp.message import interleaved_frames
from ..protocols.webrtc.sdp import NegotiatedMedia
from .grants import RoomGrant
from .room import Participant, PublishedTrack, Publisher, Room

log = logging.getLogger("streamhive.rooms")

#: The codecs a browser decodes, by kind (AAC comes as Opus through the stream's view).
ROOM_CODECS = {"video": ("h264", "vp8", "vp9", "av1", "h265"), "audio": ("opus", "pcma", "pcmu")}
#: Our payload types, one per stream track (subscribers get theirs by rewriting).
FIRST_PAYLOAD_TYPE = 96


class _StreamLink:
    """What a Publisher needs of its peer, for a publisher that is a hub stream: counters, and
    RTCP whose keyframe requests become the stream's."""

    def __init__(self, stream: Stream, counters: Counter[str]) -> None:
        self.stream = stream
        self.service = self
        self.counters = counters

    def send_rtcp(self, data: bytes) -> None:
        for item in parse_compound(data):
            if isinstance(item, (Pli, Fir)):
                self.stream.request_keyframe()
                return


class StreamParticipant:
    """One hub stream in one room, as a participant that only publishes."""

    def __init__(
        self,
        room: Room,
        stream: Stream,
        identity: str,
        name: str,
        counters: Counter[str],
        history: int,
        mtu: int,
    ) -> None:
        self.room = room
        self.stream = stream
        self.session = Session("room", f"stream:{stream.path}")
        grant = RoomGrant(room.name, identity, name, True, False, False, frozenset(), False, None)
        self.participant = Participant(
            room, grant, lambda event: None, lambda code, reason: self.stop(reason)
        )
        self.publisher = Publisher(self.participant, _StreamLink(stream, counters))  # type: ignore[arg-type]
        self.participant.publisher = self.publisher
        self.channels: dict[int, int] = {}  # muxer channel -> stream track index
        self.payload_types: dict[int, int] = {}
        tracks: list[PublishedTrack] = []
        sources = {"video": "camera", "audio": "microphone"}
        for index, track in enumerate(stream.tracks):
            rtp = codec_for_track(track)
            if rtp is None or track.codec not in ROOM_CODECS.get(track.kind, ()) or track.kind not in sources:
                continue
            source = sources.pop(track.kind)  # one video and one audio track
            pt = FIRST_PAYLOAD_TYPE + index
            media = NegotiatedMedia(
                str(index), track.kind, index, pt, rtp.sdp_format(track), track.codec, [], [], {},
                {"nack", "nack pli"}, "sendonly",
            )  # fmt: skip
            size = {"width": track.width, "height": track.height} if track.kind == "video" else {}
            tracks.append(PublishedTrack(self.participant, source, media, size, history))
            self.payload_types[index] = pt
            self.channels[2 * index] = index
        self.participant.tracks = {t.source: t for t in tracks}
        self.publisher.set_tracks(tracks)
        self.mtu = mtu
        self.reader = Reader(self.session, self, (f"room:{secrets.token_hex(4)}", self._muxer), self.stop)  # type: ignore[arg-type]
        self.stopped = False

    def _muxer(self, tracks: list[Track]) -> RtpMuxer:
        ssrcs = {index: secrets.randbits(32) for index in self.payload_types}
        channels = {index: 2 * index for index in self.payload_types}
        return RtpMuxer(tracks, channels, self.mtu, payload_types=self.payload_types, ssrcs=ssrcs)

    def start(self) -> None:
        self.room.add(self.participant)
        for track in self.participant.tracks.values():
            self.room.broadcast(
                {"type": "track_published", "identity": self.participant.identity, "track": track.info()}
            )
        self.stream.attach(self.reader)
        log.info(
            "room %s: stream %s joined as %s", self.room.name, self.stream.path, self.participant.identity
        )

    def info(self) -> dict[str, Any]:
        return {"identity": self.participant.identity, "path": self.stream.path}

    # The asyncio.WriteTransport face the hub writes to ------------------------------------------
    def write(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        for channel, packet in interleaved_frames(data):
            if channel in self.channels:  # RTP of a track we publish; sender reports are ours to make
                self.publisher.rtp(packet, now)

    def writelines(self, parts: list[bytes]) -> None:
        for part in parts:
            self.write(part)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.stopped

    def tick(self, now: float) -> None:
        self.publisher.tick(now)

    def stop(self, reason: str) -> None:
        if self.stopped:
            return
        self.stopped = True
        if not self.reader.closed:
            self.reader.close(reason, notify=False)
        self.participant.left = True
        self.room.remove(self.participant, reason)
        log.info("room %s: stream %s left (%s)", self.room.name, self.stream.path, reason)
