"""Motion JPEG over RTP (RFC 2435): scan data in fragments, the JPEG headers rebuilt at the end.

RTP/JPEG strips everything but the entropy-coded scan: the receiver rebuilds SOI, DQT, SOF,
DHT and SOS from an 8-byte header (type, Q, size in 8-pixel blocks), a restart header for types
64-127 and, for Q >= 128, the quantization tables in band. Only baseline 4:2:2 (type 0) and
4:2:0 (type 1) with the standard Huffman tables exist in this format, which is what IP cameras
send. Every JPEG is a keyframe; the hub's canonical payload is one complete JPEG.
"""

from __future__ import annotations

import functools
import struct

from ...hub.frame import Kind, Track
from . import Access, RtpError, SdpFormat, register

#: JPEGs larger than this are garbage, not a camera picture (2040x2040 at Q 100 is ~3 MB).
_MAX_FRAME = 8 << 20
_EOI = b"\xff\xd9"
_MAIN = struct.Struct(">I4B")  # type-specific + fragment offset, type, Q, width/8, height/8
_RESTART_TYPES = 64  # types 64-127: types 0-63 plus a restart marker header

# Natural (row-major) index of each coefficient in zig-zag order: DQT tables are zig-zag.
_ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)  # fmt: skip
# ITU T.81 tables K.1 and K.2 in natural order: RFC 2435's Q 1-99 scale these.
_LUMA_Q = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_CHROMA_Q = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *(99,) * 32,
)  # fmt: skip
# ITU T.81 K.3 Huffman tables by Tc<<4|Th: the 16 code-length counts, then the symbols.
_HUFFMAN = {
    0x00: bytes.fromhex("00010501010101010100000000000000") + bytes(range(12)),
    0x10: bytes.fromhex(
        "0002010303020403050504040000017d"
        "01020300041105122131410613516107227114328191a1082342b1c11552d1f0"
        "2433627282090a161718191a25262728292a3435363738393a43444546474849"
        "4a535455565758595a636465666768696a737475767778797a83848586878889"
        "8a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5"
        "c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"
    ),
    0x01: bytes.fromhex("00030101010101010101010000000000") + bytes(range(12)),
    0x11: bytes.fromhex(
        "00020102040403040705040400010277"
        "000102031104052131061241510761711322328108144291a1b1c109233352f0"
        "156272d10a162434e125f11718191a262728292a35363738393a434445464748"
        "494a535455565758595a636465666768696a737475767778797a828384858687"
        "88898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3"
        "c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa"
    ),
}


def _segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


_SOI_JFIF = b"\xff\xd8" + _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
_DHT = _segment(0xC4, b"".join(bytes((key,)) + table for key, table in _HUFFMAN.items()))


Tables = tuple[tuple[int, bytes], ...]  # (16-bit precision flag, table in zig-zag order) ...


@functools.cache
def q_tables(q: int) -> Tables:
    """Luma and chroma tables for RFC 2435 Q 0-127: T.81 K.1/K.2 scaled as the IJG library does."""
    factor = min(max(q, 1), 99)
    scale = 5000 // factor if factor < 50 else 200 - factor * 2
    return tuple(
        (0, bytes(min(max((base[i] * scale + 50) // 100, 1), 255) for i in _ZIGZAG))
        for base in (_LUMA_Q, _CHROMA_Q)
    )


def _split_tables(precision: int, data: bytes) -> Tables:
    """In-band tables as (precision, table): bit i of ``precision`` makes table i 16-bit."""
    tables = []
    pos = 0
    while pos < len(data):
        wide = (precision >> len(tables)) & 1
        size = 128 if wide else 64
        if pos + size > len(data) or len(tables) == 4:
            raise RtpError(f"RTP/JPEG quantization tables of {len(data)} bytes do not add up")
        tables.append((wide, data[pos : pos + size]))
        pos += size
    return tuple(tables[:2])


@functools.lru_cache(maxsize=8)
def jpeg_header(jpeg_type: int, width: int, height: int, restart_interval: int, tables: Tables) -> bytes:
    """Everything before the scan data of a baseline JFIF for one RTP/JPEG frame description.

    Cached: a camera sends the same description every frame, so this is built once.
    """
    dqt = b"".join(bytes((wide << 4 | i,)) + table for i, (wide, table) in enumerate(tables))
    chroma = 1 if len(tables) > 1 else 0
    sof = struct.pack(">BHHB", 8, height, width, 3) + bytes(
        (1, 0x21 if jpeg_type == 0 else 0x22, 0, 2, 0x11, chroma, 3, 0x11, chroma)
    )
    sos = bytes((3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0))
    return b"".join(
        (
            _SOI_JFIF,
            _segment(0xDB, dqt),
            _segment(0xDD, restart_interval.to_bytes(2, "big")) if restart_interval else b"",
            _segment(0xC1 if any(wide for wide, _ in tables) else 0xC0, sof),  # 16-bit tables: extended
            _DHT,
            _segment(0xDA, sos),
        )
    )


class _MjpegDepacketizer:
    """Collects one frame's fragments (contiguous offsets, one timestamp) and rebuilds the JPEG."""

    __slots__ = ("_data", "_header", "_timestamp", "_active", "_size", "_cached_tables")

    def __init__(self, track: Track) -> None:
        self._data = bytearray()
        self._header = b""
        self._timestamp = 0
        self._active = False
        self._size = (track.width, track.height)
        self._cached_tables: dict[int, Tables] = {}

    def lost(self) -> None:
        self._active = False
        self._data.clear()

    def push(self, payload: bytes, timestamp: int, marker: bool) -> list[Access]:
        if len(payload) < 8:
            raise RtpError(f"RTP/JPEG payload of {len(payload)} bytes is shorter than its header")
        offset, jpeg_type, q, width, height = _MAIN.unpack_from(payload)
        offset &= 0xFFFFFF
        pos = 8
        restart_interval = 0
        if _RESTART_TYPES <= jpeg_type < 2 * _RESTART_TYPES:
            if len(payload) < 12:
                raise RtpError("RTP/JPEG restart marker header is truncated")
            restart_interval = (payload[8] << 8) | payload[9]
            jpeg_type -= _RESTART_TYPES
            pos = 12
        if jpeg_type > 1:
            raise RtpError(f"RTP/JPEG type {jpeg_type} is not supported (0 and 1 are)")
        data = self._data
        if offset == 0:
            tables, pos = self._tables(payload, pos, q)
            if not width or not height:
                raise RtpError("RTP/JPEG picture of size 0")
            data.clear()
            self._header = jpeg_header(jpeg_type, width * 8, height * 8, restart_interval, tables)
            self._timestamp = timestamp
            self._active = True
        elif not self._active or timestamp != self._timestamp or offset != len(data):
            self.lost()  # a fragment went missing: this frame cannot be decoded
            return []
        data += memoryview(payload)[pos:]
        if len(data) > _MAX_FRAME:
            self.lost()
            raise RtpError(f"RTP/JPEG frame exceeds {_MAX_FRAME} bytes")
        if not marker:
            return []
        self._active = False
        tail = b"" if data[-2:] == _EOI else _EOI
        access = Access(timestamp, (b"".join((self._header, data, tail)),), True)
        data.clear()
        size = (width * 8, height * 8)
        if size != self._size:
            self._size = size
            access.track = Track("video", "mjpeg", width=size[0], height=size[1])
        return [access]

    def _tables(self, payload: bytes, pos: int, q: int) -> tuple[Tables, int]:
        """The frame's quantization tables and where the scan data starts."""
        if q < 128:
            return q_tables(q), pos
        if len(payload) < pos + 4:
            raise RtpError("RTP/JPEG quantization table header is truncated")
        precision = payload[pos + 1]
        length = (payload[pos + 2] << 8) | payload[pos + 3]
        end = pos + 4 + length
        if end > len(payload):
            raise RtpError("RTP/JPEG quantization tables overrun the packet")
        if length:
            parsed = _split_tables(precision, payload[pos + 4 : end])
            if q != 255:  # Q 128-254: tables may be omitted in later frames
                self._cached_tables[q] = parsed
            return parsed, end
        cached = self._cached_tables.get(q)
        if cached is None:
            raise RtpError(f"RTP/JPEG Q {q} refers to tables never sent")
        return cached, end


# --- sending --------------------------------------------------------------------------------


def _check_huffman(body: bytes) -> None:
    """RTP/JPEG has no way to send Huffman tables: a JPEG must use the standard ones."""
    pos = 0
    while pos < len(body):
        counts_end = pos + 17
        if counts_end > len(body):
            raise RtpError("truncated DHT segment")
        end = counts_end + sum(body[pos + 1 : counts_end])
        if _HUFFMAN.get(body[pos]) != body[pos + 1 : end]:
            raise RtpError("JPEG with non-standard Huffman tables cannot be sent over RTP")
        pos = end


def parse_jpeg(jpeg: bytes) -> tuple[int, int, int, int, bytes, bytes]:
    """(type, width, height, restart interval, luma+chroma tables, scan) of a baseline JPEG."""
    if jpeg[:2] != b"\xff\xd8":
        raise RtpError("not a JPEG (no SOI)")
    tables: dict[int, bytes] = {}
    sof: tuple[int, int, int, int, int] | None = None
    restart_interval = 0
    pos = 2
    while True:
        while jpeg[pos : pos + 1] == b"\xff" and jpeg[pos + 1 : pos + 2] == b"\xff":
            pos += 1  # fill bytes
        if pos + 4 > len(jpeg) or jpeg[pos] != 0xFF:
            raise RtpError("JPEG ends before its scan")
        marker = jpeg[pos + 1]
        end = pos + 2 + ((jpeg[pos + 2] << 8) | jpeg[pos + 3])
        body = jpeg[pos + 4 : end]
        if end > len(jpeg):
            raise RtpError(f"JPEG segment {marker:#x} overruns the file")
        if marker == 0xDB:
            i = 0
            while i < len(body):
                if body[i] >> 4 or i + 65 > len(body):
                    raise RtpError("JPEG quantization tables must be 8-bit for RTP")
                tables[body[i] & 0x0F] = body[i + 1 : i + 65]
                i += 65
        elif marker == 0xC0:
            sof = _baseline_frame(body)
        elif 0xC1 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            raise RtpError(f"JPEG SOF{marker - 0xC0} is not baseline; RTP/JPEG carries baseline only")
        elif marker == 0xC4:
            _check_huffman(body)
        elif marker == 0xDD:
            if len(body) != 2:
                raise RtpError("bad JPEG DRI segment")
            restart_interval = (body[0] << 8) | body[1]
        elif marker == 0xDA:
            break
        pos = end
    if sof is None:
        raise RtpError("JPEG has no baseline SOF0 before its scan")
    jpeg_type, width, height, luma, chroma = sof
    if luma not in tables or chroma not in tables:
        raise RtpError("JPEG refers to a quantization table it does not define")
    scan = jpeg[end:-2] if jpeg.endswith(_EOI) else jpeg[end:]
    return jpeg_type, width, height, restart_interval, tables[luma] + tables[chroma], scan


def _baseline_frame(body: bytes) -> tuple[int, int, int, int, int]:
    """(type, width, height, luma table, chroma table) from SOF0, for 4:2:2 or 4:2:0 YCbCr."""
    if len(body) != 15 or body[0] != 8 or body[5] != 3:
        raise RtpError("RTP/JPEG carries 8-bit three-component JPEGs only")
    height, width = struct.unpack_from(">HH", body, 1)
    (_, y_sampling, luma), (_, cb_sampling, chroma), (_, cr_sampling, cr_table) = (
        body[6:9],
        body[9:12],
        body[12:15],
    )
    jpeg_type = {0x21: 0, 0x22: 1}.get(y_sampling)
    if jpeg_type is None or cb_sampling != 0x11 or cr_sampling != 0x11 or cr_table != chroma:
        raise RtpError("RTP/JPEG carries YCbCr 4:2:2 and 4:2:0 with shared chroma tables only")
    if not 0 < width <= 2040 or not 0 < height <= 2040:
        raise RtpError(f"JPEG of {width}x{height} exceeds RTP/JPEG's 2040x2040")
    return jpeg_type, width, height, luma, chroma


class _MjpegPacketizer:
    """Type 0/1 (64/65 with restart markers), Q=255 with the JPEG's own tables in every frame."""

    __slots__ = ("mtu",)

    def __init__(self, mtu: int) -> None:
        self.mtu = mtu
        if mtu < 12 + 4 + 128 + 1:
            raise RtpError(f"MTU {mtu} leaves no room for RTP/JPEG")

    def packetize(self, units: tuple[bytes, ...], keyframe: bool) -> list[tuple[bytes, bool]]:
        jpeg = units[0] if len(units) == 1 else b"".join(units)
        jpeg_type, width, height, restart_interval, tables, scan = parse_jpeg(jpeg)
        if restart_interval:
            jpeg_type += _RESTART_TYPES
            restart = struct.pack(">HH", restart_interval, 0xFFFF)  # F=L=1, count 0x3FFF: any split
        else:
            restart = b""
        head = bytes((jpeg_type, 255, (width + 7) >> 3, (height + 7) >> 3))
        first = struct.pack(">BBH", 0, 0, len(tables)) + tables
        out = []
        offset, size = 0, len(scan)
        if size >= 1 << 24:
            raise RtpError("JPEG scan too large for RTP/JPEG's 24-bit fragment offset")
        while True:
            header = offset.to_bytes(4, "big") + head + restart + (first if offset == 0 else b"")
            chunk = scan[offset : offset + self.mtu - len(header)]
            offset += len(chunk)
            out.append((header + chunk, offset >= size))
            if offset >= size:
                return out


class MjpegCodec:
    """RTP/JPEG (static payload type 26); sends baseline JPEGs with their own tables (Q=255)."""

    name = "mjpeg"
    encodings: tuple[str, ...] = ("JPEG",)
    kind: Kind = "video"
    static_payload_type: int | None = 26

    def sdp_format(self, track: Track) -> SdpFormat:
        return SdpFormat("JPEG", 90000)

    def track_from_sdp(self, fmt: SdpFormat) -> Track:
        """The size is only in the RTP/JPEG headers: the first frame reports it (Access.track)."""
        if fmt.clock_rate != 90000:
            raise RtpError(f"RTP/JPEG clock must be 90000, not {fmt.clock_rate}")
        return Track("video", "mjpeg")

    def packetizer(self, track: Track, mtu: int = 1400) -> _MjpegPacketizer:
        return _MjpegPacketizer(mtu)

    def depacketizer(self, track: Track, fmt: SdpFormat) -> _MjpegDepacketizer:
        return _MjpegDepacketizer(track)


MJPEG = register(MjpegCodec())
