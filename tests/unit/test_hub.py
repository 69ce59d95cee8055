"""The hub with fake transports: fan-out, GOP cache, slow readers, grace period, refusals."""

from __future__ import annotations

import asyncio

import pytest

from streamhive.auth import AuthRequest
from streamhive.config import Config, PathConfig
from streamhive.hub import Frame, Hub, Reader, Refused, Session, Track


class FakeTransport:
    """Records writes; ``stuck`` makes it look like a client that stopped reading."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.stuck = False
        self.pending = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        if self.stuck:
            self.pending += len(data)
        else:
            self.chunks.append(data)

    def writelines(self, parts: list[bytes]) -> None:
        self.write(b"".join(parts))  # what asyncio's default WriteTransport.writelines does

    def get_write_buffer_size(self) -> int:
        return self.pending

    def is_closing(self) -> bool:
        return self.closing


class TextMuxer:
    """A muxer whose bytes say what they are, so the tests can read them."""

    def __init__(self, tracks: list[Track]) -> None:
        self.tracks = tracks
        self.calls = 0

    def header(self, tracks: list[Track], metadata: dict[str, object]) -> bytes:
        return b"H" + ",".join(t.codec for t in tracks).encode() + b";"

    def frame(self, frame: Frame) -> bytes:
        self.calls += 1
        return b"%d%s;" % (frame.dts, b"K" if frame.keyframe else b"")

    def tracks_changed(self, tracks: list[Track], metadata: dict[str, object]) -> bytes:
        return b"C;"


FORMAT = ("text", TextMuxer)


def video(dts: int, key: bool = False, size: int = 10) -> Frame:
    return Frame(0, dts, dts, key, (b"x" * size,))


def push(stream, frame: Frame) -> None:  # type: ignore[no-untyped-def]
    """Write one frame and flush it to the readers now (normally the next loop turn does)."""
    stream.write(frame)
    stream.flush()


def make_hub(**path: object) -> Hub:
    return Hub(Config(path_defaults=PathConfig(**path)))  # type: ignore[arg-type]


def add_reader(stream, transport: FakeTransport, ended: list[str] | None = None) -> Reader:  # type: ignore[no-untyped-def]
    reader = Reader(Session("test", "r"), transport, FORMAT, (ended if ended is not None else []).append)  # type: ignore[arg-type]
    stream.attach(reader)
    return reader


async def test_fanout_muxes_once_and_gop_cache_starts_on_keyframe() -> None:
    hub = make_hub()
    stream = await hub.publish("live/a", Session("test", "p"))
    stream.set_track(Track("video", "h264"))
    for dts, key in ((0, True), (1, False), (2, True), (3, False)):
        push(stream, video(dts, key))
    t1, t2 = FakeTransport(), FakeTransport()
    r1 = add_reader(stream, t1)
    add_reader(stream, t2)
    assert t1.chunks == [b"Hh264;2K;3;"]  # header then the GOP since the last keyframe, one write
    push(stream, video(4))
    assert t1.chunks[-1] is t2.chunks[-1]  # the very same bytes object: muxed once
    group_muxer = stream._groups[("text", "raw")].muxer
    assert group_muxer.calls == 2 + 1  # the cached GOP once at group creation, then each frame once
    r1.close("bye")
    assert stream.reader_count() == 1


async def test_frames_of_one_loop_turn_go_out_in_one_write() -> None:
    hub = make_hub()
    stream = await hub.publish("live/a", Session("test", "p"))
    stream.set_track(Track("video", "h264"))
    stream.write(video(0, True))
    waiting, live = FakeTransport(), FakeTransport()
    add_reader(stream, live)
    add_reader(stream, waiting).waiting_key = True  # as if it had fallen behind
    live.chunks.clear()
    for dts, key in ((1, False), (2, True), (3, False)):
        stream.write(video(dts, key))
    assert live.chunks == []  # nothing written yet: queued for the end of this loop turn
    await asyncio.sleep(0)
    assert live.chunks == [b"1;2K;3;"]
    assert waiting.chunks[-1] == b"2K;3;"  # a skipping reader starts at the batch's keyframe


async def test_slow_reader_skips_to_keyframe_then_is_disconnected() -> None:
    hub = make_hub(reader_backlog_bytes=16 * 1024, reader_max_lag=1.0)
    stream = await hub.publish("live/a", Session("test", "p"))
    stream.set_track(Track("video", "h264"))
    push(stream, video(0, True))
    slow, fast, ended = FakeTransport(), FakeTransport(), []
    add_reader(stream, slow, ended)
    add_reader(stream, fast)
    slow.stuck = True
    slow.pending = 20 * 1024  # more than the backlog
    for dts in range(1, 5):
        push(stream, video(dts))
    assert slow.pending == 20 * 1024  # nothing more was queued for it
    slow.stuck, slow.pending = False, 0  # it catches up...
    push(stream, video(5))  # ...but waits for a keyframe
    push(stream, video(6, True))
    assert slow.chunks[-1] == b"6K;"
    assert fast.chunks[-3:] == [b"4;", b"5;", b"6K;"]  # the fast reader never missed a frame
    slow.stuck, slow.pending = True, 20 * 1024
    push(stream, video(7))
    await asyncio.sleep(1.1)
    push(stream, video(8))
    assert ended and ended[0].startswith("slow reader")
    assert hub.stats.slow_readers_disconnected == 1 and hub.stats.dropped_frames >= 5
    assert stream.reader_count() == 1


async def test_second_publisher_refused_unless_takeover() -> None:
    hub = make_hub()
    await hub.publish("live/a", Session("test", "p1"))
    with pytest.raises(Refused) as refused:
        await hub.publish("live/a", Session("test", "p2"))
    assert refused.value.code == "busy"
    kicked: list[str] = []
    hub2 = make_hub(takeover=True)
    first = Session("test", "p1")
    first.kick = kicked.append
    await hub2.publish("live/a", first)
    stream = await hub2.publish("live/a", Session("test", "p2"))
    assert kicked and stream.publisher is not first


async def test_reader_of_unknown_or_bad_path() -> None:
    hub = make_hub()
    with pytest.raises(Refused) as refused:
        await hub.read("live/none", Session("test", "r"))
    assert refused.value.code == "not_found"
    for bad in ("a/../b", "a\\b", "a\x00b", "x" * 300, "", "a//b"):
        with pytest.raises(Refused) as refused:
            await hub.publish(bad, Session("test", "p"))
        assert refused.value.code == "bad_path", bad


async def test_authorization_hook_sees_every_request() -> None:
    hub = make_hub()
    seen: list[AuthRequest] = []

    async def check(request: AuthRequest) -> bool:
        seen.append(request)
        return request.query != "token=bad"

    hub.auth.add(check)
    await hub.publish("live/a", Session("rtmp", "1.2.3.4:5", query="token=good"))
    with pytest.raises(Refused) as refused:
        await hub.read("live/a", Session("http-flv", "1.2.3.4:6", query="token=bad"))
    assert refused.value.code == "unauthorized"
    assert [(r.action, r.protocol, r.path) for r in seen] == [
        ("publish", "rtmp", "live/a"),
        ("read", "http-flv", "live/a"),
    ]


async def test_publisher_returning_within_grace_keeps_readers_with_monotonic_time() -> None:
    hub = make_hub(publisher_grace=0.5)
    first = Session("test", "p1")
    stream = await hub.publish("live/a", first)
    stream.set_track(Track("video", "h264"))
    push(stream, video(90000, True))
    transport, ended = FakeTransport(), []
    add_reader(stream, transport, ended)
    hub.unpublish(stream, first)
    await asyncio.sleep(0.1)
    again = await hub.publish("live/a", Session("test", "p2"))
    assert again is stream and not ended
    push(stream, video(0, True))  # the new publisher starts its clock at zero
    assert transport.chunks[-1] == b"93600K;"  # continues after the old timestamps
    hub.unpublish(stream, stream.publisher)  # type: ignore[arg-type]
    await asyncio.sleep(0.7)
    assert ended == ["publisher left"] and "live/a" not in hub.streams


async def test_frames_iterator_is_bounded() -> None:
    hub = make_hub(frames_buffer=4)
    stream = await hub.publish("live/a", Session("test", "p"))
    stream.set_track(Track("video", "h264"))
    got: list[int] = []

    async def consume() -> None:
        async for frame in stream.frames():
            got.append(frame.dts)

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0)
    for dts in range(6):  # the consumer does not run meanwhile: 4 fit, then skipping starts
        push(stream, video(dts, key=dts == 0))
    await asyncio.sleep(0.01)
    for dts in range(6, 10):  # room again, but 6 and 7 are not keyframes
        push(stream, video(dts, key=dts == 8))
    await asyncio.sleep(0.01)
    stream.end("done")
    await asyncio.wait_for(task, 1)
    assert got == [0, 1, 2, 3, 8, 9]  # full at 4 frames: skipped to the next keyframe


async def test_write_coalesce_gathers_frames_for_that_long() -> None:
    hub = make_hub(write_coalesce=0.05)
    stream = await hub.publish("live/a", Session("test", "p"))
    stream.set_track(Track("video", "h264"))
    stream.write(video(0, True))
    transport = FakeTransport()
    add_reader(stream, transport)
    transport.chunks.clear()
    stream.write(video(1))
    await asyncio.sleep(0.01)
    stream.write(video(2))
    assert transport.chunks == []
    await asyncio.sleep(0.06)
    assert transport.chunks == [b"1;2;"]
