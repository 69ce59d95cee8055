"""RTSP with real clients: ffmpeg publishes over RTSP (TCP and UDP) and over RTMP; ffmpeg reads
back over RTSP (TCP and UDP), RTMP and HTTP-FLV; ffprobe decodes what each player received and
checks that audio and video start together."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.conftest import (
    FFMPEG,
    FFPROBE,
    PEERS,
    RunningServer,
    needs_ffmpeg,
    needs_gst,
    probe,
    publishing,
    record,
    run,
    terminate,
)

pytestmark = [pytest.mark.interop, needs_ffmpeg]


async def record_rtsp(url: str, out: Path, seconds: float, transport: str = "tcp") -> None:
    await record(url, out, seconds, input_options=("-rtsp_transport", transport))


async def start_times(path: Path) -> dict[str, float]:
    assert FFPROBE is not None
    rc, out, err = await run(
        [FFPROBE, "-v", "error", "-show_entries", "stream=codec_type,start_time", "-of", "json", str(path)]
    )
    assert rc == 0, err
    return {s["codec_type"]: float(s["start_time"]) for s in json.loads(out)["streams"]}


async def check_recording(path: Path, min_frames: int = 60) -> None:
    info = await probe(path)
    video, audio = info["video"], info["audio"]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240), info
    assert int(video["nb_read_frames"]) >= min_frames, info  # type: ignore[arg-type]
    assert audio["codec_name"] == "aac" and int(audio["sample_rate"]) == 44100, info  # type: ignore[arg-type]
    assert int(audio["nb_read_frames"]) >= min_frames, info  # type: ignore[arg-type]
    starts = await start_times(path)
    assert abs(starts["video"] - starts["audio"]) < 0.1, f"A/V start times {starts} in {path.name}"


@pytest.mark.parametrize("publish_transport", ["tcp", "udp"])
async def test_rtsp_publish_read_everywhere(
    server: RunningServer, tmp_path: Path, publish_transport: str
) -> None:
    url = f"{server.rtsp}/live/cam1"
    muxer = ("-f", "rtsp", "-rtsp_transport", publish_transport)
    async with publishing(server, "live/cam1", 20, url=url, muxer=muxer):
        info = server.api("/api/v1/paths/live/cam1")
        assert info["publisher"]["protocol"] == "rtsp"  # type: ignore[index]
        files = {name: tmp_path / f"{name}.mkv" for name in ("rtsp_tcp", "rtsp_udp", "rtmp", "httpflv")}
        await asyncio.gather(
            record_rtsp(url, files["rtsp_tcp"], 4, "tcp"),
            record_rtsp(url, files["rtsp_udp"], 4, "udp"),
            record(f"{server.rtmp}/live/cam1", files["rtmp"], 4),
            record(f"{server.http}/live/cam1.flv", files["httpflv"], 4),
        )
    for path in files.values():
        await check_recording(path)


async def test_rtmp_publish_rtsp_read(server: RunningServer, tmp_path: Path) -> None:
    async with publishing(server, "live/cam2", 20):
        files = {t: tmp_path / f"{t}.mkv" for t in ("tcp", "udp")}
        await asyncio.gather(*(record_rtsp(f"{server.rtsp}/live/cam2", files[t], 4, t) for t in files))
    for path in files.values():
        await check_recording(path)
    assert "Traceback" not in server.log()


async def test_rtsp_unknown_path_is_404(server: RunningServer) -> None:
    assert FFPROBE is not None
    rc, _, err = await run([FFPROBE, "-v", "error", "-rtsp_transport", "tcp", f"{server.rtsp}/nothing/here"])
    assert rc != 0 and "404" in err, err


async def rtsp_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes to the RTSP port; everything the server answers until it closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    out = bytearray()
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), timeout):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    writer.close()
    return bytes(out)


async def test_rtsp_bad_input_closes_only_that_session(make_server, tmp_path: Path) -> None:
    server = make_server(rtsp_options="  request_timeout: 1\n")
    url = f"{server.rtsp}/live/cam3"
    port = server.rtsp_port
    async with publishing(server, "live/cam3", 25, url=url, muxer=("-f", "rtsp", "-rtsp_transport", "tcp")):
        player = asyncio.ensure_future(record_rtsp(url, tmp_path / "player.mkv", 6, "tcp"))
        answers = {
            "no cseq": await rtsp_exchange(port, b"OPTIONS * RTSP/1.0\r\n\r\n", 1),
            "huge header": await rtsp_exchange(
                port, b"OPTIONS * RTSP/1.0\r\nX: " + b"a" * 100_000 + b"\r\n\r\n", 2
            ),
            "absurd length": await rtsp_exchange(
                port, b"ANNOUNCE rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999999\r\n\r\n", 2
            ),
            "bad transport": await rtsp_exchange(
                port, f"SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: bogus;;;\r\n\r\n".encode(), 1
            ),
            "garbage": await rtsp_exchange(port, bytes(range(256)) * 4, 2),
            "silent": await rtsp_exchange(port, b"", 3),
            "unknown channel": await rtsp_exchange(port, b"$\x07\x00\x04abcd", 2),
            "bad sdp": await rtsp_exchange(
                port,
                b"ANNOUNCE rtsp://h/live/x RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\n"
                b"Content-Length: 12\r\n\r\nm=video x y\n",
                1,
            ),
        }
        await player
    assert answers["no cseq"].startswith(b"RTSP/1.0 400"), answers
    assert answers["huge header"].startswith(b"RTSP/1.0 413") or answers["huge header"].startswith(
        b"RTSP/1.0 400"
    )
    assert answers["absurd length"].startswith((b"RTSP/1.0 413", b"RTSP/1.0 400")), answers
    assert answers["bad transport"].startswith((b"RTSP/1.0 461", b"RTSP/1.0 400")), answers
    assert answers["garbage"].startswith(b"RTSP/1.0 400") or answers["garbage"] == b"", answers
    assert answers["silent"] == b""
    assert answers["bad sdp"].startswith(b"RTSP/1.0 400"), answers
    await check_recording(tmp_path / "player.mkv", 100)
    log = server.log()
    assert "no request within 1s" in log
    assert "never set up" in log
    assert "Traceback" not in log


@needs_gst
@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_gstreamer_plays_rtsp(server: RunningServer, transport: str) -> None:
    """An RTSP player that is not ffmpeg: GStreamer's rtspsrc, depayloading what we send."""
    async with publishing(server, "live/gst", 20):
        rc, out, err = await run(
            ["/usr/bin/python3", str(PEERS / "gst_rtsp_reader.py"), f"{server.rtsp}/live/gst",
             "--seconds", "4", "--protocols", transport]
        )  # fmt: skip
    assert rc == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["errors"] == [], report
    media = report["media"]
    assert media["video"]["encoding"] == "H264" and media["video"]["buffers"] >= 80, report
    assert media["audio"]["encoding"] == "MPEG4-GENERIC" and media["audio"]["buffers"] >= 100, report


ANNOUNCE_SDP = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=junk\r\nt=0 0\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:streamid=0\r\n"
    "m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n"
    "a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210\r\n"
    "a=control:streamid=1\r\n"
)


async def test_rtsp_publisher_sending_garbage_rtp(server: RunningServer, tmp_path: Path) -> None:
    """A publisher whose RTP is random bytes and mangled headers: dropped packet by packet, the
    session stays up, nothing reaches readers as a frame, the server logs no traceback."""
    import random

    rng = random.Random(7)
    url = f"{server.rtsp}/live/junk"
    reader, writer = await asyncio.open_connection("127.0.0.1", server.rtsp_port)

    async def request(text: str, body: str = "") -> bytes:
        head = text + (f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n" if body else "")
        writer.write((head + "\r\n" + body).encode())
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)

    assert (await request(f"ANNOUNCE {url} RTSP/1.0\r\nCSeq: 1\r\n", ANNOUNCE_SDP)).startswith(
        b"RTSP/1.0 200"
    )
    session = ""
    for cseq, (ctl, ch) in enumerate((("streamid=0", 0), ("streamid=1", 2)), start=2):
        answer = await request(
            f"SETUP {url}/{ctl} RTSP/1.0\r\nCSeq: {cseq}\r\n"
            f"Transport: RTP/AVP/TCP;unicast;interleaved={ch}-{ch + 1};mode=record\r\n"
            + (f"Session: {session}\r\n" if cseq > 2 else "")
        )
        assert answer.startswith(b"RTSP/1.0 200"), answer
        session = next(
            line.split(b":", 1)[1].split(b";")[0].strip().decode()
            for line in answer.split(b"\r\n")
            if line.lower().startswith(b"session:")
        )
    assert (await request(f"RECORD {url} RTSP/1.0\r\nCSeq: 9\r\nSession: {session}\r\n")).startswith(
        b"RTSP/1.0 200"
    )
    for seq in range(3000):
        channel = rng.choice((0, 1, 2, 3))
        kind = rng.random()
        if kind < 0.5:  # a valid RTP header over a random payload (FU-A, STAP-A, AU headers...)
            payload = bytes([0x80, 0x80 | (96 + channel // 2)]) + seq.to_bytes(2, "big") + bytes(8)
            payload += rng.randbytes(rng.randint(0, 1500))
        else:  # anything at all
            payload = rng.randbytes(rng.randint(0, 300))
        writer.write(b"$" + bytes([channel]) + len(payload).to_bytes(2, "big") + payload)
        if seq % 100 == 0:
            await writer.drain()
    await writer.drain()
    await asyncio.sleep(0.5)
    listed = server.api("/api/v1/paths")["items"]  # type: ignore[index]
    assert [p["name"] for p in listed] == ["live/junk"]  # still publishing
    writer.close()
    log = server.log()
    assert "Traceback" not in log and "dropped malformed RTP" in log, log


CODEC_CASES = {
    # name: (ffmpeg encoder options, how to read it back, expected (video, audio) codecs)
    "aac-latm": (
        ("-c:v", "libx264", "-tune", "zerolatency", "-c:a", "aac", "-rtpflags", "latm"),
        "rtmp",
        ("h264", "aac"),
    ),
    "opus": (("-c:v", "libx264", "-tune", "zerolatency", "-c:a", "libopus"), "rtsp", ("h264", "opus")),
    "pcma": (
        ("-c:v", "libx264", "-tune", "zerolatency", "-c:a", "pcm_alaw", "-ar", "8000", "-ac", "1"),
        "rtsp",
        ("h264", "pcm_alaw"),
    ),
    "mjpeg": (("-c:v", "mjpeg", "-huffman", "0", "-pix_fmt", "yuvj420p", "-an"), "rtsp", ("mjpeg", None)),
    "hevc": (
        ("-c:v", "libx265", "-x265-params", "log-level=none:bframes=0", "-c:a", "aac"),
        "hls",
        ("hevc", "aac"),
    ),
}


@pytest.mark.parametrize("case", sorted(CODEC_CASES))
async def test_rtsp_payload_formats_from_ffmpeg(server: RunningServer, tmp_path: Path, case: str) -> None:
    """ffmpeg's own RTP packetizers as publishers: LATM, Opus, G.711, MJPEG and H.265 come in
    over RTSP and go out over RTSP, RTMP or HLS, decodable."""
    assert FFMPEG is not None
    options, output, (vcodec, acodec) = CODEC_CASES[case]
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-re",
           "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000",
           "-t", "20", "-g", "25", *options, "-f", "rtsp", "-rtsp_transport", "tcp", f"{server.rtsp}/codec/{case}"]  # fmt: skip
    publisher = await asyncio.create_subprocess_exec(*cmd)
    try:
        await asyncio.to_thread(server.wait_for_path, f"codec/{case}", 2 if acodec else 1)
        out = tmp_path / f"{case}.mkv"
        if output == "rtsp":
            await record_rtsp(f"{server.rtsp}/codec/{case}", out, 3)
        elif output == "rtmp":
            await record(f"{server.rtmp}/codec/{case}", out, 3)
        else:
            await record(f"{server.http}/codec/{case}/index.m3u8", out, 3)
    finally:
        await terminate(publisher)
    info = await probe(out)
    assert (info["video"]["codec_name"], info["video"]["width"]) == (vcodec, 320), info
    assert int(info["video"]["nb_read_frames"]) >= 40, info  # type: ignore[arg-type]
    if acodec:
        assert info["audio"]["codec_name"] == acodec and int(info["audio"]["nb_read_frames"]) >= 20, info  # type: ignore[arg-type]
