"""fMP4 fragments of random samples parse back: box sizes add up, trun matches the frames."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from streamhive.codecs import h264
from streamhive.formats import fmp4
from streamhive.hub.frame import Frame, Track

OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 312, 48000, 0, 0)
TRACKS = [
    Track("video", "h264", bytes.fromhex("0164001fffe100"), width=64, height=48),
    Track("audio", "opus", OPUS_HEAD, sample_rate=48000, channels=2),
]

sample = st.tuples(
    st.integers(0, 6000),  # dts step from the previous frame
    st.integers(-3000, 9000),  # pts - dts
    st.booleans(),  # keyframe
    st.lists(st.binary(max_size=64), min_size=1, max_size=3),  # NAL units (audio: joined)
)
track_samples = st.lists(sample, min_size=1, max_size=20)


def make_frames(index: int, start: int, samples: list) -> list[Frame]:
    frames = []
    dts = start
    for step, cts, key, units in samples:
        dts += step
        payload = tuple(units) if index == 0 else (b"".join(units),)
        frames.append(Frame(index, dts + cts if index == 0 else dts, dts, key, payload))
    return frames


def boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, body start, box end) for each box in data[start:end]; sizes must tile it exactly."""
    out = []
    pos = start
    while pos < end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        assert size >= 8 and pos + size <= end, (kind, size)
        out.append((kind, pos + 8, pos + size))
        pos += size
    assert pos == end
    return out


@settings(max_examples=60, deadline=None)
@given(
    video=st.one_of(st.none(), track_samples),
    audio=st.one_of(st.none(), track_samples),
    start=st.integers(0, 1 << 40),
    next_steps=st.tuples(
        st.one_of(st.none(), st.integers(0, 6000)), st.one_of(st.none(), st.integers(0, 6000))
    ),
)
def test_fragment_parses_back(video: list | None, audio: list | None, start: int, next_steps: tuple) -> None:
    frames = {i: make_frames(i, start, s) for i, s in enumerate((video, audio)) if s}
    if not frames:
        return
    next_dts = {i: fs[-1].dts + next_steps[i] for i, fs in frames.items() if next_steps[i] is not None}
    muxer = fmp4.FragmentMuxer(TRACKS)
    for sequence in (1, 2):
        data = muxer.fragment(frames, next_dts)
        (moof_kind, moof_body, moof_end), (mdat_kind, mdat_body, mdat_end) = boxes(data, 0, len(data))
        assert (moof_kind, mdat_kind, mdat_end) == (b"moof", b"mdat", len(data))
        children = boxes(data, moof_body, moof_end)
        assert children[0][0] == b"mfhd"
        assert struct.unpack_from(">II", data, children[0][1]) == (0, sequence)
        assert [c[0] for c in children[1:]] == [b"traf"] * len(frames)
        for (_, traf_body, traf_end), (index, track_frames) in zip(
            children[1:], sorted(frames.items()), strict=True
        ):
            check_traf(
                data, traf_body, traf_end, index, track_frames, next_dts.get(index), mdat_body, mdat_end
            )


def check_traf(
    data: bytes,
    body: int,
    end: int,
    index: int,
    frames: list[Frame],
    following: int | None,
    mdat: int,
    mdat_end: int,
) -> None:
    (_, tfhd, _), (_, tfdt, _), (trun_kind, trun, trun_end) = boxes(data, body, end)
    assert struct.unpack_from(">II", data, tfhd) == (0x020000, index + 1)
    state = fmp4.timescale(TRACKS[index])

    def scale(ts: int) -> int:
        return ts if state == 90000 else (ts * state + 45000) // 90000

    assert struct.unpack_from(">IQ", data, tfdt) == (1 << 24, scale(frames[0].dts))
    assert trun_kind == b"trun"
    version_flags, count, offset = struct.unpack_from(">IIi", data, trun)
    with_cts = bool(version_flags & 0x800)
    fields = 4 if with_cts else 3
    assert count == len(frames) and trun_end - trun == 12 + 4 * fields * count
    entries = struct.unpack_from(f">{fields * count}I", data, trun + 12)
    dts = [scale(f.dts) for f in frames]
    durations = [b - a for a, b in zip(dts, dts[1:], strict=False)]
    last = scale(following) - dts[-1] if following is not None else (durations[-1] if durations else None)
    pos = offset
    for i, frame in enumerate(frames):
        duration, size, flags = entries[i * fields : i * fields + 3]
        expected = h264.join_avcc(frame.units) if index == 0 else frame.units[0]
        assert size == len(expected) and data[pos : pos + size] == expected
        assert mdat <= pos and pos + size <= mdat_end
        pos += size
        if i < len(durations):
            assert duration == durations[i]
        elif last is not None:
            assert duration == last
        sync = frame.keyframe or index == 1
        assert flags == (0x02000000 if sync else 0x01010000)
        if with_cts:
            cts = struct.unpack(">i", struct.pack(">I", entries[i * fields + 3]))[0]
            assert cts == scale(frame.pts) - dts[i]
    assert with_cts == any(scale(f.pts) != d for f, d in zip(frames, dts, strict=True))
