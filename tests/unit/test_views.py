"""Transcoded views: made on demand, and their transcoder kept across video-only track changes."""

from __future__ import annotations

from streamhive.codecs.aac import make_audio_specific_config
from streamhive.config import Config
from streamhive.hub import Hub, Session, Track


async def test_a_video_config_change_keeps_the_audio_transcoder() -> None:
    hub = Hub(Config())
    stream = await hub.publish("live/view", Session("rtmp", "127.0.0.1:1"))
    stream.set_track(Track("video", "h264", b"\x01sps-1", width=320, height=240))
    asc = make_audio_specific_config(2, 44100, 2)
    stream.set_track(Track("audio", "aac", asc, sample_rate=44100, channels=2))
    view_stream = stream.readable_with(frozenset(("opus",)))
    assert view_stream is not stream and [t.codec for t in view_stream.tracks] == ["h264", "opus"]
    view = stream.views["opus"]
    transcoder = view.transcoder
    assert transcoder is not None

    stream.set_track(Track("video", "h264", b"\x01sps-2", width=640, height=480))  # new SPS
    assert view.transcoder is transcoder and view_stream.tracks[0].width == 640

    stream.set_track(
        Track("audio", "aac", make_audio_specific_config(2, 48000, 2), sample_rate=48000, channels=2)
    )
    assert view.transcoder is not transcoder and view.transcoder is not None  # new audio: new transcoder
    stream.end("test over")
    assert view_stream.ended and not stream.views
