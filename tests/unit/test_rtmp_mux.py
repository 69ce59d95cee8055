"""RtmpMuxer leaves out what FLV cannot carry instead of failing the publisher's write."""

from __future__ import annotations

from streamhive.hub.frame import Frame, Track
from streamhive.protocols.rtmp.mux import RtmpMuxer


def test_rtmp_muxer_skips_mjpeg_and_carries_g711() -> None:
    tracks = [
        Track("video", "mjpeg", width=320, height=240),
        Track("audio", "pcma", sample_rate=8000, channels=1),
    ]
    muxer = RtmpMuxer(tracks, 4096, 1)
    assert muxer.header(tracks, {})  # metadata, no sequence headers
    assert muxer.frame(Frame(0, 0, 0, True, (b"\xff\xd8jpeg\xff\xd9",))) == b""
    audio = muxer.frame(Frame(1, 90, 90, True, (bytes(160),)))
    assert audio and audio.endswith(b"\x72" + bytes(160))  # FLV flags byte 0x72: A-law, 8 kHz mono
