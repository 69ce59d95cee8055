"""Motion JPEG over RTP (RFC 2435): rebuilt JPEGs decode with FFmpeg's decoder (PyAV)."""

from __future__ import annotations

import functools
import struct
from fractions import Fraction

import pytest

from streamhive.formats.rtp import Access, RtpError, SdpFormat, codec_for_encoding, codec_for_track
from streamhive.formats.rtp.mjpeg import MJPEG, jpeg_header, parse_jpeg, q_tables
from streamhive.hub.frame import Track
from tests.conftest import needs_ffmpeg
from tests.unit.test_rtp_aac import depacketize_rtp, ffmpeg_rtp

av = pytest.importorskip("av")

FMT = SdpFormat("JPEG", 90000)


@functools.cache
def encode_jpeg(width: int, height: int, pix_fmt: str = "yuvj420p", seed: int = 0) -> bytes:
    """One JPEG from FFmpeg's mjpeg encoder (standard Huffman tables, restart interval set)."""
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = Fraction(1, 25)
    frame = av.VideoFrame(width, height, pix_fmt)
    for plane in frame.planes:
        plane.update(bytes((i * 7 + i // width * 3 + seed) & 0xFF for i in range(plane.buffer_size)))
    return b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None))


def decode(jpeg: bytes) -> av.VideoFrame:
    (frame,) = av.CodecContext.create("mjpeg", "r").decode(av.Packet(jpeg))
    return frame


def planes(frame: av.VideoFrame) -> list[bytes]:
    """The visible samples of each plane, without the line padding."""
    out = []
    for plane in frame.planes:
        data, stride = bytes(plane), plane.line_size
        out.append(b"".join(data[row * stride : row * stride + plane.width] for row in range(plane.height)))
    return out


def gray_scan(mcus: int, luma_blocks: int, restart: int = 0) -> bytes:
    """Entropy-coded data of a flat mid-gray picture: with the standard tables every block is
    "DC difference 0" then "end of block" (luma 00 1010, chroma 00 00), so we can write it."""
    out = bytearray()
    pending = ""

    def flush() -> None:
        nonlocal pending
        pending += "1" * (-len(pending) % 8)  # pad with 1 bits, as T.81 says
        out.extend(int(pending[i : i + 8], 2) for i in range(0, len(pending), 8))
        pending = ""

    for i in range(mcus):
        if restart and i and i % restart == 0:
            flush()
            out.extend((0xFF, 0xD0 + (i // restart - 1) % 8))
        pending += "001010" * luma_blocks + "0000" * 2
    flush()
    return bytes(out)


def rtp_jpeg(
    scan: bytes,
    jpeg_type: int,
    width: int,
    height: int,
    q: int = 50,
    restart: int = 0,
    tables: bytes = b"",
    precision: int = 0,
    mtu: int = 1000,
) -> list[tuple[bytes, bool]]:
    """RFC 2435 packets for a scan, built by the book (independently of our packetizer)."""
    packets = []
    offset = 0
    while True:
        header = struct.pack(">I4B", offset, jpeg_type + (64 if restart else 0), q, width // 8, height // 8)
        if restart:
            header += struct.pack(">HH", restart, 0xFFFF)
        if offset == 0 and q >= 128:
            header += struct.pack(">BBH", 0, precision, len(tables)) + tables
        chunk = scan[offset : offset + mtu]
        offset += len(chunk)
        packets.append((header + chunk, offset >= len(scan)))
        if offset >= len(scan):
            return packets


def depacketize(
    packets: list[tuple[bytes, bool]], timestamp: int = 0, depacketizer: object = None
) -> list[Access]:
    depacketizer = depacketizer or MJPEG.depacketizer(MJPEG.track_from_sdp(FMT), FMT)
    out: list[Access] = []
    for payload, marker in packets:
        out += depacketizer.push(payload, timestamp, marker)  # type: ignore[attr-defined]
    return out


def markers(jpeg: bytes) -> list[int]:
    """The marker sequence up to SOS."""
    found, pos = [], 2
    while True:
        found.append(jpeg[pos + 1])
        if jpeg[pos + 1] == 0xDA:
            return found
        pos += 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")


def test_registry_and_sdp() -> None:
    assert codec_for_encoding("jpeg") is MJPEG and codec_for_track(Track("video", "mjpeg")) is MJPEG
    assert MJPEG.static_payload_type == 26
    assert MJPEG.sdp_format(Track("video", "mjpeg")) == FMT
    track = MJPEG.track_from_sdp(FMT)
    assert (track.kind, track.codec, track.width, track.height) == ("video", "mjpeg", None, None)
    with pytest.raises(RtpError, match="90000"):
        MJPEG.track_from_sdp(SdpFormat("JPEG", 8000))


def test_q_tables_follow_the_rfc() -> None:
    """Q 50 is T.81's tables as they are, in zig-zag order; Q scales them like the IJG library."""
    (_, luma), (_, chroma) = q_tables(50)
    assert list(luma[:8]) == [16, 11, 12, 14, 12, 10, 16, 14] and luma[-1] == 99
    assert list(chroma[:6]) == [17, 18, 18, 24, 21, 24] and set(chroma[-20:]) == {99}
    assert set(q_tables(99)[0][1]) == {1, 2}  # 200 - 2*99 = 2 percent of the base values
    assert q_tables(0) == q_tables(1) and max(q_tables(1)[0][1]) == 255
    assert q_tables(25)[0][1][0] == (16 * 200 + 50) // 100  # below 50: 5000 / Q percent


@pytest.mark.parametrize(
    ("jpeg_type", "pix_fmt", "luma_blocks", "mcu_height"), [(0, "yuvj422p", 2, 8), (1, "yuvj420p", 4, 16)]
)
@pytest.mark.parametrize("restart", [0, 3])
def test_types_0_and_1_rebuild_to_decodable_jpegs(
    jpeg_type: int, pix_fmt: str, luma_blocks: int, mcu_height: int, restart: int
) -> None:
    width, height = 96, 64
    scan = gray_scan((width // 16) * (height // mcu_height), luma_blocks, restart)
    (access,) = depacketize(rtp_jpeg(scan, jpeg_type, width, height, restart=restart, mtu=7), 1234)
    assert access.timestamp == 1234 and access.keyframe
    assert access.track is not None and (access.track.width, access.track.height) == (width, height)
    jpeg = access.units[0]
    expected = [0xE0, 0xDB, *([0xDD] if restart else []), 0xC0, 0xC4, 0xDA]
    assert jpeg[:2] == b"\xff\xd8" and markers(jpeg) == expected and jpeg.endswith(b"\xff\xd9")
    frame = decode(jpeg)
    assert (frame.width, frame.height, frame.format.name) == (width, height, pix_fmt)
    assert all(set(plane) == {128} for plane in planes(frame))


@pytest.mark.parametrize("mtu", [1400, 150])
def test_packetizer_round_trip_is_pixel_exact(mtu: int) -> None:
    """FFmpeg's JPEG (4:2:0, restart interval 4) through our packetizer (Q=255, its own tables)
    and back decodes to exactly the same picture."""
    original = encode_jpeg(160, 120)
    packets = MJPEG.packetizer(Track("video", "mjpeg", width=160, height=120), mtu).packetize(
        (original,), True
    )
    assert all(len(p) <= mtu for p, _ in packets) and [m for _, m in packets][-1]
    first = packets[0][0]
    assert first[:8] == bytes((0, 0, 0, 0, 65, 255, 20, 15))  # offset 0, type 1 + restart, Q 255
    assert first[8:16] == bytes.fromhex("000affff00000080")  # DRI 10, F=L=1; 128 bytes of tables
    offsets = [int.from_bytes(p[1:4], "big") for p, _ in packets]
    assert offsets == sorted(offsets) and offsets[0] == 0
    (access,) = depacketize(packets)
    assert planes(decode(access.units[0])) == planes(decode(original))


def test_q_below_128_uses_the_rfc_tables() -> None:
    """FFmpeg's scan with the RFC's Q 80 tables instead of its own: a picture of the right size."""
    _, width, height, restart, _, scan = parse_jpeg(encode_jpeg(64, 48))
    (access,) = depacketize(rtp_jpeg(scan, 1, width, height, q=80, restart=restart))
    jpeg = access.units[0]
    dqt = jpeg.index(b"\xff\xdb")
    assert jpeg[dqt + 4 : dqt + 4 + 130] == b"\x00" + q_tables(80)[0][1] + b"\x01" + q_tables(80)[1][1]
    frame = decode(jpeg)
    assert (frame.width, frame.height) == (64, 48)


def test_dynamic_tables_are_cached_for_q_128_to_254() -> None:
    """Q 128-254: tables may be sent once and omitted (length 0) in later frames."""
    depacketizer = MJPEG.depacketizer(MJPEG.track_from_sdp(FMT), FMT)
    tables = b"".join(t for _, t in q_tables(70))
    scan = gray_scan(4 * 3, 4)
    first = depacketize(rtp_jpeg(scan, 1, 64, 48, q=200, tables=tables), 0, depacketizer)
    second = depacketize(rtp_jpeg(scan, 1, 64, 48, q=200, tables=b""), 3000, depacketizer)
    assert first[0].units == second[0].units and second[0].track is None
    with pytest.raises(RtpError, match="never sent"):
        depacketize(rtp_jpeg(scan, 1, 64, 48, q=201, tables=b""), 6000, depacketizer)
    with pytest.raises(RtpError, match="never sent"):
        depacketize(rtp_jpeg(scan, 1, 64, 48, q=255, tables=b""), 9000, depacketizer)


def test_16_bit_tables_make_an_extended_jpeg() -> None:
    tables = b"".join(struct.pack(">64H", *t) for _, t in q_tables(50))
    (access,) = depacketize(rtp_jpeg(gray_scan(12, 4), 1, 64, 48, q=255, tables=tables, precision=3))
    jpeg = access.units[0]
    assert markers(jpeg) == [0xE0, 0xDB, 0xC1, 0xC4, 0xDA]
    assert jpeg[jpeg.index(b"\xff\xdb") + 4] == 0x10  # Pq 1, Tq 0
    assert set(planes(decode(jpeg))[0]) == {128}


def test_loss_and_gaps_drop_the_frame() -> None:
    depacketizer = MJPEG.depacketizer(MJPEG.track_from_sdp(FMT), FMT)
    scan = gray_scan(12, 4)
    packets = rtp_jpeg(scan, 1, 64, 48, mtu=5)
    assert len(packets) >= 3
    whole = depacketize(packets, 0, depacketizer)
    assert len(whole) == 1 and whole[0].track is not None
    # A missing middle fragment: offsets stop being contiguous.
    assert depacketize(packets[:1] + packets[2:], 3000, depacketizer) == []
    # Loss reported by the receiver.
    depacketizer.lost()
    assert depacketize(packets[1:], 6000, depacketizer) == []
    # A new timestamp in the middle of a frame.
    assert depacketize(packets[:2], 9000, depacketizer) == []
    assert depacketize(packets[2:], 12000, depacketizer) == []
    # And the next whole frame is fine, with no new track (same size).
    (again,) = depacketize(packets, 15000, depacketizer)
    assert again.units == whole[0].units and again.track is None
    # A size change is reported.
    (bigger,) = depacketize(rtp_jpeg(gray_scan(20, 4), 1, 80, 64), 18000, depacketizer)
    assert bigger.track is not None and (bigger.track.width, bigger.track.height) == (80, 64)


def test_eoi_in_the_payload_is_not_doubled() -> None:
    scan = gray_scan(12, 4) + b"\xff\xd9"
    (access,) = depacketize(rtp_jpeg(scan, 1, 64, 48))
    assert access.units[0].endswith(scan) and not access.units[0].endswith(b"\xff\xd9" * 2)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x00" * 7, "shorter"),
        (bytes((0, 0, 0, 0, 5, 50, 8, 8)), "type 5"),
        (bytes((0, 0, 0, 0, 64, 50, 8, 8, 0)), "restart marker header"),
        (bytes((0, 0, 0, 0, 1, 50, 0, 8)), "size 0"),
        (bytes((0, 0, 0, 0, 1, 255, 8, 8, 0, 0)), "table header"),
        (bytes((0, 0, 0, 0, 1, 255, 8, 8, 0, 0, 0, 64)), "overrun"),
        (bytes((0, 0, 0, 0, 1, 255, 8, 8, 0, 0, 0, 3, 1, 2, 3)), "do not add up"),
    ],
)
def test_malformed_payloads_raise(payload: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        MJPEG.depacketizer(MJPEG.track_from_sdp(FMT), FMT).push(payload, 0, True)


def test_packetizer_refuses_what_rtp_jpeg_cannot_say() -> None:
    packetizer = MJPEG.packetizer(Track("video", "mjpeg"))
    with pytest.raises(RtpError, match="SOI"):
        packetizer.packetize((b"not a jpeg",), True)
    # FFmpeg's 4:2:2 uses 2x2 luma with 1x2 chroma: a different block order than type 0.
    with pytest.raises(RtpError, match="4:2:2 and 4:2:0"):
        packetizer.packetize((encode_jpeg(64, 48, "yuvj422p"),), True)
    jpeg = bytearray(encode_jpeg(64, 48))
    dht = jpeg.index(b"\xff\xc4")
    jpeg[dht + 6], jpeg[dht + 7] = jpeg[dht + 7], jpeg[dht + 6]  # other DC code lengths
    with pytest.raises(RtpError, match="Huffman"):
        packetizer.packetize((bytes(jpeg),), True)
    progressive = bytes(jpeg_header(1, 64, 48, 0, q_tables(50))).replace(b"\xff\xc0", b"\xff\xc2")
    with pytest.raises(RtpError, match="SOF2"):
        packetizer.packetize((progressive,), True)
    with pytest.raises(RtpError, match="overruns"):
        packetizer.packetize((encode_jpeg(64, 48)[:100],), True)
    with pytest.raises(RtpError, match="ends before"):
        packetizer.packetize((encode_jpeg(64, 48)[:2],), True)


@needs_ffmpeg
def test_ffmpeg_rtp_mjpeg() -> None:
    fmt, packets = ffmpeg_rtp(
        "-f", "lavfi", "-i", "testsrc=size=176x144:rate=5", "-frames:v", "3",
        "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-huffman", "default",
    )  # fmt: skip
    assert fmt.encoding == "JPEG" and fmt.clock_rate == 90000
    _, out = depacketize_rtp(fmt, packets)
    assert len(out) == 3
    assert out[0].track is not None and (out[0].track.width, out[0].track.height) == (176, 144)
    for access in out:
        frame = decode(access.units[0])
        assert (frame.width, frame.height) == (176, 144)
