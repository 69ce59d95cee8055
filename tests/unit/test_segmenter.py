"""The segmenter and playlists, sans-IO: frames in, parts/segments/playlists out."""

from __future__ import annotations

from streamhive.codecs.aac import make_audio_specific_config
from streamhive.delivery import playlists
from streamhive.delivery.segmenter import Segmenter
from streamhive.hub.frame import Frame, Track
from tests.media import encode_video


def tracks() -> list[Track]:
    avcc, _ = encode_video("libx264", 320, 240)
    video = Track("video", "h264", avcc, width=320, height=240)
    audio = Track("audio", "aac", make_audio_specific_config(2, 48000, 2), sample_rate=48000, channels=2)
    return [video, audio]


def feed(seg: Segmenter, seconds: float, start: int = 0, gop: int = 25) -> int:
    """25 fps video (keyframe every ``gop`` frames) and 48 kHz AAC, interleaved by time."""
    audio_step = 1920  # 1024 samples at 48 kHz in 90 kHz ticks
    video_frames = int(seconds * 25)
    audio_t = start
    for n in range(video_frames):
        dts = start + n * 3600
        while audio_t <= dts:
            seg.offer(Frame(1, audio_t, audio_t, True, (b"a" * 50,)), True)
            audio_t += audio_step
        key = n % gop == 0
        seg.offer(Frame(0, dts, dts, key, (b"\x65" + b"v" * 300,) if key else (b"\x41" + b"v" * 100,)), key)
    return start + video_frames * 3600


def make(**kw: object) -> Segmenter:
    options = dict(segment_duration=1.0, part_duration=0.2, window=4, with_ts=True, clock=lambda: 1e9)
    options.update(kw)
    return Segmenter(tracks(), **options)  # type: ignore[arg-type]


def test_parts_and_segments_cut_on_keyframes() -> None:
    seg = make()
    feed(seg, 3.1)
    assert [s.msn for s in seg.segments] == [0, 1, 2]
    first = seg.segments[0]
    assert first.complete and abs(first.duration - 1.0) < 1e-9
    assert [round(p.duration, 3) for p in first.parts] == [0.2] * 5
    assert first.parts[0].independent and not first.parts[1].independent
    assert first.data == b"".join(p.data for p in first.parts)
    assert first.track_data(0) and first.track_data(1)  # DASH per-track segments
    assert first.ts.startswith(b"\x47") and len(first.ts) % 188 == 0
    assert seg.current is not None and seg.current.msn == 3


def test_long_gop_makes_longer_segments_and_window_is_bounded() -> None:
    seg = make(window=3)
    feed(seg, 12.1, gop=50)  # keyframe every 2 s
    assert [round(s.duration, 3) for s in seg.segments] == [2.0, 2.0, 2.0]
    assert [s.msn for s in seg.segments] == [3, 4, 5]  # 0..5 closed by the keyframe at 12 s
    assert playlists.target_duration(seg) == 2


def test_ll_hls_playlist() -> None:
    seg = make()
    feed(seg, 2.5)
    text = playlists.media_playlist(seg, low_latency=True, ts=False)
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600" in text
    assert "#EXT-X-PART-INF:PART-TARGET=0.200" in text and '#EXT-X-MAP:URI="init0.mp4"' in text
    assert '#EXT-X-PART:DURATION=0.20000,URI="seg0.0.m4s",INDEPENDENT=YES' in text
    assert "#EXTINF:1.00000,\nseg1.m4s" in text
    assert text.rstrip().endswith('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg2.2.m4s"')
    classic = playlists.media_playlist(seg, low_latency=False, ts=True)
    assert "#EXT-X-PART" not in classic and "seg1.ts" in classic and "EXT-X-MAP" not in classic
    master = playlists.master_playlist(seg, "stream.m3u8", ts=False)
    assert 'CODECS="avc1.' in master and ",mp4a.40.2" in master and "RESOLUTION=320x240" in master


def test_delta_update_skips_old_segments() -> None:
    seg = make(window=20)
    feed(seg, 15.1)
    full = playlists.media_playlist(seg, low_latency=True, ts=False)
    delta = playlists.media_playlist(seg, low_latency=True, ts=False, skip=True)
    assert "#EXT-X-SKIP:SKIPPED-SEGMENTS=" in delta and len(delta) < len(full)
    assert "seg0.m4s" in full and "seg0.m4s" not in delta


def test_restart_continues_numbering_with_a_discontinuity() -> None:
    old = make()
    feed(old, 3.1)
    old.end()
    assert "#EXT-X-ENDLIST" in playlists.media_playlist(old, low_latency=True, ts=False)
    new = make()
    new.continue_from(old)
    feed(new, 2.1, start=0)  # the new publisher's clock starts again at zero
    msns = [s.msn for s in new.segments]
    assert msns == sorted(msns) and msns[-1] > 3
    text = playlists.media_playlist(new, low_latency=True, ts=False)
    assert "#EXT-X-DISCONTINUITY" in text and '#EXT-X-MAP:URI="init1.mp4"' in text
    assert set(new.inits) == {0, 1}  # old segments still listed: their init is still served
    assert "ENDLIST" not in text


def test_codec_change_starts_a_new_init() -> None:
    seg = make()
    end = feed(seg, 2.1)
    seg.tracks[0] = Track("video", "h264", encode_video("libx264", 318, 238)[0], width=318, height=238)
    seg.tracks_changed()
    feed(seg, 2.1, start=end)
    text = playlists.media_playlist(seg, low_latency=True, ts=False)
    assert text.count("#EXT-X-MAP") == 2 and "#EXT-X-DISCONTINUITY" in text
    mpd = playlists.mpd(seg, 1e9 + 10, "http://h/api/v1/time")
    assert 'type="dynamic"' in mpd and 'width="318"' in mpd and "<UTCTiming" in mpd
    assert "urn:mpeg:dash:utc:http-iso:2014" in mpd and 'initialization="dash-t0-init1.mp4"' in mpd


def test_millisecond_clocks_at_30_fps_keep_parts_within_target() -> None:
    """RTMP timestamps are milliseconds: 30 fps frames are 33 or 34 ms apart."""
    seg = make()
    for n in range(30 * 4 + 1):
        dts = round(n * 1000 / 30) * 90
        key = n % 30 == 0
        seg.offer(Frame(0, dts, dts, key, (b"\x65" if key else b"\x41",)), key)
    target = playlists.part_target(seg)
    assert target <= 0.2015
    for segment in seg.segments:
        durations = [p.duration for p in segment.parts]
        assert all(d <= target for d in durations)
        assert all(d >= 0.85 * 0.2 for d in durations[:-1]), durations
    assert playlists.target_duration(seg) == 1
    assert "#EXT-X-TARGETDURATION:1\n" in playlists.media_playlist(seg, low_latency=True, ts=False)
