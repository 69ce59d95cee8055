"""MPEG-TS muxer properties: any frame sizes and timestamps give well-formed, continuous TS."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamhive.formats.mpegts import AUDIO_PID, PACKET_SIZE, TIMESTAMP_OFFSET, VIDEO_PID, TsMuxer
from streamhive.hub.frame import Frame, Track
from tests.conftest import needs_ffmpeg
from tests.unit.test_mpegts import (
    assert_continuous,
    assert_probe_matches,
    encode_av,
    ffprobe,
    pes_units,
    read_ts_field,
    split_at_keyframes,
)

pytest.importorskip("av")

PATTERN = bytes(range(1, 256)) * 80  # no zero bytes, so no accidental start codes
ADTS_MAX = 8184

frame_specs = st.lists(
    st.tuples(
        st.booleans(),  # audio?
        st.lists(st.integers(0, 20000), min_size=0, max_size=3),  # unit sizes
        st.booleans(),  # keyframe
        st.integers(0, 9000),  # dts step
        st.integers(0, 9000),  # pts - dts
        st.booleans(),  # start a new segment (header) before this frame
    ),
    max_size=25,
)


def _tracks(video: str, audio: str) -> list[Track]:
    tracks, _ = encode_av(
        "libx264" if video == "h264" else "libx265", "libopus" if audio == "opus" else "aac", 2, True
    )
    return list(tracks)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    combo=st.sampled_from([("h264", "aac"), ("h265", "opus"), ("h265", "aac")]),
    start=st.integers(-TIMESTAMP_OFFSET, 1 << 33),
    specs=frame_specs,
)
def test_any_frames_make_well_formed_ts(combo: tuple[str, str], start: int, specs: list) -> None:
    muxer = TsMuxer(_tracks(*combo))
    out = bytearray(muxer.header())
    dts = start
    frames: list[Frame] = []
    for audio, sizes, keyframe, step, delay, new_segment in specs:
        dts += step
        if audio:
            sizes, delay = [min(s, ADTS_MAX) for s in sizes[:1]] or [0], 0
        units = tuple(PATTERN[:size] for size in sizes)
        frame = Frame(int(audio), dts + delay, dts, keyframe, units)
        if new_segment:
            out += muxer.header()
        out += muxer.frame(frame)
        frames.append(frame)
    data = bytes(out)
    assert len(data) % PACKET_SIZE == 0
    assert data[::PACKET_SIZE] == b"\x47" * (len(data) // PACKET_SIZE)
    assert_continuous(data)  # also parses every packet's adaptation field length
    for pid, track in ((VIDEO_PID, 0), (AUDIO_PID, 1)):
        ours = [f for f in frames if f.track == track]
        pes = pes_units(data, pid)
        assert len(pes) == len(ours)
        for packet, frame in zip(pes, ours, strict=True):
            assert packet[:3] == b"\x00\x00\x01"
            assert read_ts_field(packet[9:14]) == (frame.pts + TIMESTAMP_OFFSET) % (1 << 33)
            if pid == AUDIO_PID:
                assert int.from_bytes(packet[4:6], "big") == len(packet) - 6


@needs_ffmpeg
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    combo=st.sampled_from([("libx264", "aac"), ("libx265", "aac"), ("libx264", "libopus")]),
    bframes=st.booleans(),
    shift=st.integers(0, 10**9),
    repeat_header=st.booleans(),
)
def test_ffprobe_accepts_shifted_streams(
    tmp_path: Path, combo: tuple[str, str], bframes: bool, shift: int, repeat_header: bool
) -> None:
    """Real frames at any start time, with or without a header per segment, probe cleanly."""
    tracks, frames = encode_av(*combo, bframes=bframes)
    shifted = [Frame(f.track, f.pts + shift, f.dts + shift, f.keyframe, f.units) for f in frames]
    muxer = TsMuxer(list(tracks))
    data = bytearray(muxer.header())
    for i, segment in enumerate(split_at_keyframes(tuple(shifted))):
        if i and repeat_header:
            data += muxer.header()
        data += b"".join(map(muxer.frame, segment))
    assert_continuous(bytes(data))
    path = tmp_path / "fuzz.ts"
    path.write_bytes(data)
    assert_probe_matches(ffprobe(path), tracks, shifted)
