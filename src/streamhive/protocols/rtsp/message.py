"""RTSP messages, ``$``-interleaved frames, and an incremental parser for one TCP connection.

One parser serves both ends: a server also reads responses to requests it sends (keep-alives to a
pulled camera), and a client also reads requests a server sends it (ANNOUNCE, GET_PARAMETER,
OPTIONS). RTP over TCP arrives as ``$`` frames between messages, so that is the hot path: a frame
costs one slice, and a frame that arrives in pieces is only looked at again once it is complete.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

__all__ = [
    "REASONS",
    "Headers",
    "Interleaved",
    "Request",
    "Response",
    "RtspError",
    "RtspParser",
    "cseq",
    "interleaved_frame",
    "interleaved_frames",
]

REASONS: dict[int, str] = {
    100: "Continue",
    200: "OK",
    201: "Created",
    250: "Low on Storage Space",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    410: "Gone",
    411: "Length Required",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    451: "Parameter Not Understood",
    453: "Not Enough Bandwidth",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    456: "Header Field Not Valid for Resource",
    457: "Invalid Range",
    458: "Parameter Is Read-Only",
    459: "Aggregate Operation Not Allowed",
    460: "Only Aggregate Operation Allowed",
    461: "Unsupported Transport",
    462: "Destination Unreachable",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "RTSP Version Not Supported",
    551: "Option Not Supported",
}

DEFAULT_MAX_HEADER_BYTES = 16384
DEFAULT_MAX_BODY_BYTES = 1_000_000
DEFAULT_MAX_HEADERS = 64

_FRAME = struct.Struct(">BBH")
_DOLLAR = 0x24
_HEAD_END = re.compile(rb"\n\r?\n")
# control bytes never appear in a message head; finding one means binary data lost its framing
_JUNK = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PROTOCOL = re.compile(r"[A-Za-z]+/\d+\.\d+(?:\s|$)")
_RTSP1 = re.compile(r"RTSP/1\.\d")


class RtspError(ValueError):
    """The peer broke RTSP or a configured limit; ``status`` is what a server should answer.

    A ``ValueError`` so that code parsing configuration (URLs, say) can treat it like any bad value.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Headers:
    """Header fields: names compare case-insensitively, order and repeats are kept for re-encoding.

    Iterating yields ``(name, value)`` pairs in order. Lookups are linear scans, which beats hashing
    for the dozen fields a real message has.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: list[tuple[str, str, str]] = [(k.lower(), k, v) for k, v in pairs]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        key = name.lower()
        for k, _, v in self._items:
            if k == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in order (WWW-Authenticate is commonly sent several times)."""
        key = name.lower()
        return [v for k, _, v in self._items if k == key]

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` field by one, kept where the first one was (appended if absent)."""
        key = name.lower()
        out: list[tuple[str, str, str]] = []
        placed = False
        for item in self._items:
            if item[0] == key:
                if not placed:
                    out.append((key, name, value))
                    placed = True
            else:
                out.append(item)
        if not placed:
            out.append((key, name, value))
        self._items = out

    def add(self, name: str, value: str) -> None:
        """Append one more field, keeping any existing ones of that name."""
        self._items.append((name.lower(), name, value))

    def remove(self, name: str) -> None:
        """Drop every field named ``name`` (no error when there is none)."""
        key = name.lower()
        self._items = [item for item in self._items if item[0] != key]

    def copy(self) -> Headers:
        return Headers((n, v) for _, n, v in self._items)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        self.set(name, value)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(k == key for k, _, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((n, v) for _, n, v in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    def __repr__(self) -> str:
        return f"Headers({[(n, v) for _, n, v in self._items]!r})"


def _encode(start_line: str, headers: Headers, body: bytes) -> bytes:
    lines = [start_line]
    for name, value in headers:
        if body and name.lower() == "content-length":
            continue
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    # a CR or LF smuggled in through a path or header value would forge extra headers
    for line in lines:
        if "\r" in line or "\n" in line:
            raise ValueError(f"CR or LF inside an RTSP start line or header: {line[:200]!r}")
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


@dataclass(slots=True)
class Request:
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = "RTSP/1.0"

    def encode(self) -> bytes:
        """Wire bytes; Content-Length is (re)computed whenever there is a body."""
        return _encode(f"{self.method} {self.uri} {self.version}", self.headers, self.body)


@dataclass(slots=True)
class Response:
    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = "RTSP/1.0"

    def encode(self) -> bytes:
        """Wire bytes; an empty reason is filled from ``REASONS``, Content-Length from the body."""
        reason = self.reason or REASONS.get(self.status, "")
        return _encode(f"{self.version} {self.status} {reason}", self.headers, self.body)


@dataclass(slots=True)
class Interleaved:
    """One ``$`` frame: RTP or RTCP on the channel the Transport header's ``interleaved=`` chose."""

    channel: int
    data: bytes


def interleaved_frame(channel: int, data: bytes) -> bytes:
    """``$``, channel, 16-bit length, payload: what RTP over the RTSP connection looks like."""
    if not 0 <= channel <= 255:
        raise ValueError(f"interleaved channel {channel} outside 0..255")
    if len(data) > 0xFFFF:
        raise ValueError(f"interleaved payload of {len(data)} bytes exceeds 65535")
    return _FRAME.pack(_DOLLAR, channel, len(data)) + data


def interleaved_frames(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(channel, payload) of each ``$`` frame in ``data`` (whole frames, as the RTP muxer writes
    them); a truncated last frame is cut short rather than an error."""
    pos, end = 0, len(data)
    while pos + 4 <= end:
        channel, start = data[pos + 1], pos + 4
        pos = start + ((data[pos + 2] << 8) | data[pos + 3])
        yield channel, data[start:pos]


def cseq(headers: Headers) -> str | None:
    """The CSeq value to echo, or None when missing or blank (the server decides what to do)."""
    value = headers.get("CSeq")
    if value is None:
        return None
    return value.strip() or None


class RtspParser:
    """Split a connection's bytes into requests, responses and interleaved frames.

    Incremental: any split of the same bytes gives the same items (or the same error). Blank lines
    between messages are skipped, bare LF is accepted for CRLF, header continuation lines are
    folded. After an ``RtspError`` the stream has lost its framing: answer and close.
    """

    __slots__ = ("max_header_bytes", "max_body_bytes", "max_headers", "_buf", "_need", "_scanned")

    def __init__(
        self,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_headers: int = DEFAULT_MAX_HEADERS,
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.max_headers = max_headers
        self._buf = bytearray()  # the start of an incomplete item, nothing before it
        self._need = 0  # bytes the incomplete item needs in all, when known
        self._scanned = 0  # bytes of an incomplete head already searched for its end

    def feed(self, data: bytes) -> list[Request | Response | Interleaved]:
        """Consume bytes; return the items they complete, in order."""
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:
                return []
            work: bytes | bytearray = buf
        else:
            work = data
        out: list[Request | Response | Interleaved] = []
        pos = 0
        end = len(work)
        need = 0
        scanned = self._scanned
        self._scanned = 0
        with memoryview(work) as view:
            while pos < end:
                b = work[pos]
                if b == _DOLLAR:
                    if end - pos < 4:
                        need = 4
                        break
                    stop = pos + 4 + ((work[pos + 2] << 8) | work[pos + 3])
                    if stop > end:
                        need = stop - pos
                        break
                    out.append(Interleaved(work[pos + 1], view[pos + 4 : stop].tobytes()))
                    pos = stop
                    continue
                if b == 13 or b == 10:
                    pos += 1
                    continue
                if not (0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A):
                    raise RtspError(
                        400, f"byte 0x{b:02x} where an RTSP message or a $ frame should start (binary junk?)"
                    )
                item, size = self._message(work, view, pos, end, scanned)
                scanned = 0
                if item is None:
                    need = size
                    break
                out.append(item)
                pos += size
            if work is not buf:
                self._buf = bytearray(view[pos:])
        if work is buf:
            del buf[:pos]
        self._need = need
        return out

    def _message(
        self, work: bytes | bytearray, view: memoryview, pos: int, end: int, scanned: int
    ) -> tuple[Request | Response | None, int]:
        """Parse the message at ``pos``: (message, its size), or (None, bytes needed or 0)."""
        limit = min(end, pos + self.max_header_bytes)
        match = _HEAD_END.search(work, pos + max(0, scanned - 2), limit)
        head_stop = match.start() if match else limit
        junk = _JUNK.search(work, pos + scanned, head_stop)
        if junk:
            raise RtspError(400, f"control byte 0x{work[junk.start()]:02x} inside an RTSP message head")
        if match is None:
            if end - pos >= self.max_header_bytes:
                raise RtspError(413, f"RTSP message head longer than {self.max_header_bytes} bytes")
            self._scanned = end - pos
            return None, 0
        raw = view[pos:head_stop].tobytes()
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        headers = self._headers(lines[1:])
        length = self._content_length(headers)
        body_start = match.end()
        size = body_start - pos + length
        if end - pos < size:
            return None, size
        body = view[body_start : body_start + length].tobytes()
        first = lines[0].strip()
        if _PROTOCOL.match(first):
            return _response(first, headers, body), size
        return _request(first, headers, body), size

    def _headers(self, lines: list[str]) -> Headers:
        pairs: list[tuple[str, str]] = []
        for line in lines:
            if line[:1] in (" ", "\t"):
                if not pairs:
                    raise RtspError(400, "header continuation line before any header")
                name, value = pairs[-1]
                pairs[-1] = (name, f"{value} {line.strip()}".strip())
                continue
            name, colon, value = line.partition(":")
            if not colon:
                raise RtspError(400, f"header line without a colon: {line[:80]!r}")
            name = name.strip()
            if not _TOKEN.fullmatch(name):
                raise RtspError(400, f"bad header name {name[:80]!r}")
            if len(pairs) >= self.max_headers:
                raise RtspError(400, f"more than {self.max_headers} header lines")
            pairs.append((name, value.strip()))
        return Headers(pairs)

    def _content_length(self, headers: Headers) -> int:
        values = {v.strip() for v in headers.get_all("Content-Length")}
        if not values:
            return 0
        if len(values) > 1:
            raise RtspError(400, f"conflicting Content-Length values {sorted(values)!r}")
        raw = values.pop()
        if not (raw.isascii() and raw.isdigit()):
            raise RtspError(400, f"bad Content-Length {raw[:40]!r}")
        if len(raw) > 15 or int(raw) > self.max_body_bytes:
            raise RtspError(413, f"Content-Length {raw[:40]} exceeds the {self.max_body_bytes}-byte limit")
        return int(raw)


def _check_version(version: str) -> None:
    if _RTSP1.fullmatch(version):
        return
    if _PROTOCOL.match(version):
        raise RtspError(505, f"unsupported protocol version {version[:20]!r} (this is RTSP/1.0)")
    raise RtspError(400, f"bad protocol version {version[:20]!r}")


def _request(line: str, headers: Headers, body: bytes) -> Request:
    parts = line.split()
    if len(parts) != 3:
        raise RtspError(400, f"bad request line {line[:120]!r}: want METHOD URI RTSP/1.0")
    method, uri, version = parts
    if not _TOKEN.fullmatch(method):
        raise RtspError(400, f"bad method {method[:40]!r}")
    _check_version(version)
    return Request(method, uri, headers, body, version)


def _response(line: str, headers: Headers, body: bytes) -> Response:
    parts = line.split(None, 2)
    _check_version(parts[0])
    code = parts[1] if len(parts) > 1 else ""
    if not (len(code) == 3 and code.isascii() and code.isdigit() and code[0] in "12345"):
        raise RtspError(400, f"bad status line {line[:120]!r}")
    return Response(int(code), parts[2] if len(parts) > 2 else "", headers, body, parts[0])
