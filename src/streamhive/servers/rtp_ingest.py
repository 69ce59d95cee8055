"""RTP into a Stream: what an RTSP publisher (RECORD) and a pulled RTSP source have in common.

The SDP says which media exist; each supported one gets an RtpReceiver, and all of them share
one ClockSync so their Frames land on one timeline. A video track whose SDP carries no
parameter sets joins the Stream only once they arrive in-band (no reader can decode before).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..formats.rtp import RtpCodec, RtpError, SdpFormat, codec_for_encoding
from ..formats.rtp.receive import ClockSync, RtpReceiver
from ..formats.rtp.rtcp import ReceiverReport, SenderReport, ntp_middle32, ntp_to_unix, parse_compound
from ..formats.sdp import MediaDescription, SessionDescription
from ..hub import Stream
from ..hub.frame import Track

log = logging.getLogger("streamhive.rtp")

#: Our SSRC in receiver reports ("STRM"); we send no media to publishers, so any fixed value works.
RECEIVER_SSRC = 0x5354524D


@dataclass(slots=True)
class IngestMedia:
    """One m= section we can take in."""

    control: str
    codec: RtpCodec
    track: Track
    fmt: SdpFormat
    payload_type: int


def _media(media: MediaDescription) -> IngestMedia | None:
    rtpmap, fmtp = media.rtpmap(), media.fmtp()
    for pt_text in media.formats:
        try:
            pt = int(pt_text)
        except ValueError:
            continue
        if pt not in rtpmap:
            continue
        encoding, clock_rate, channels = rtpmap[pt]
        codec = codec_for_encoding(encoding)
        if codec is None or codec.kind != media.kind:
            continue
        fmt = SdpFormat(encoding, clock_rate, channels, fmtp.get(pt, {}))
        try:
            track = codec.track_from_sdp(fmt)
        except RtpError as exc:
            log.info("unusable %s format in SDP: %s", encoding, exc)
            continue
        return IngestMedia(media.control or "", codec, track, fmt, pt)
    return None


def ingest_medias(sdp: SessionDescription) -> list[IngestMedia | None]:
    """The SDP's media in order; None where no format is one we can depacketize."""
    return [_media(m) for m in sdp.media]


def describe_medias(medias: list[IngestMedia | None]) -> str:
    return ", ".join(f"{m.codec.name}/{m.fmt.clock_rate}" if m else "unsupported" for m in medias)


class RtpIngest:
    """Receivers for the media of one publisher, writing Frames into ``stream``."""

    def __init__(self, stream: Stream, medias: list[IngestMedia | None], reorder: bool) -> None:
        self.stream = stream
        self.medias = medias
        self.receivers: dict[int, RtpReceiver] = {}
        self.indexes: dict[int, int] = {}  # media index -> hub track index
        self.sync = ClockSync([m.fmt.clock_rate if m else 90000 for m in medias])
        self.malformed = 0
        for i, media in enumerate(medias):
            if media is None:
                continue
            self.receivers[i] = RtpReceiver(media.codec, media.track, media.fmt, media.payload_type, reorder)
            if media.track.kind == "audio" or media.track.config or media.codec.name == "mjpeg":
                self.indexes[i] = stream.set_track(media.track)

    def rtp(self, media: int, data: bytes, arrival: float) -> None:
        receiver = self.receivers.get(media)
        if receiver is None:
            return
        try:
            accesses = receiver.packet(data, arrival)
        except RtpError as exc:
            self.malformed += 1
            if self.malformed == 1 or self.malformed % 1000 == 0:
                log.info(
                    "path %s: dropped malformed RTP (%d so far): %s", self.stream.path, self.malformed, exc
                )
            return
        stream = self.stream
        for access in accesses:
            if access.track is not None:
                self.indexes[media] = stream.set_track(access.track)
            index = self.indexes.get(media)
            if index is None:
                continue  # video before its parameter sets: nobody could decode it
            stream.write(self.sync.frame(media, access, arrival, index))

    def rtcp(self, media: int, data: bytes, arrival: float) -> None:
        """Sender reports tie the media's RTP clock to NTP time (lip sync)."""
        try:
            packets = parse_compound(data)
        except RtpError:
            return
        for packet in packets:
            if isinstance(packet, SenderReport):
                self.sender_report(media, packet, arrival)

    def sender_report(self, media: int, report: SenderReport, arrival: float) -> None:
        receiver = self.receivers.get(media)
        if receiver is not None:
            self.sync.sender_report(media, ntp_to_unix(report.ntp_timestamp), report.rtp_timestamp)
            receiver.stats.sender_report_received(ntp_middle32(report.ntp_timestamp), arrival)

    def receiver_report(self, media: int, ssrc: int, now: float) -> bytes | None:
        """An RTCP RR for one media (None before its first packet); ``now`` on the arrival clock."""
        receiver = self.receivers.get(media)
        if receiver is None or receiver.ssrc is None:
            return None
        return ReceiverReport(ssrc, (receiver.stats.report_block(receiver.ssrc, now),)).serialize()
