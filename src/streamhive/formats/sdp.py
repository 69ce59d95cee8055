"""SDP (RFC 8866, formerly RFC 4566): a generic model, a lenient parser and a strict encoder.

Used by RTSP (DESCRIBE answers, ANNOUNCE offers) and WebRTC alike, so nothing here is specific to
either. The parser takes what cameras actually send (bare LF, no ``o=``/``s=``/``t=``, stray
whitespace, vendor lines) and refuses only what would leave the media unusable: a malformed
``m=`` line, a bad RTP payload number, or input past the configured limits. The encoder always
writes the mandatory lines, in the order the RFC requires, with CRLF.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "Connection",
    "MediaDescription",
    "Origin",
    "RtpMap",
    "STATIC_PAYLOAD_TYPES",
    "SdpError",
    "SessionDescription",
    "parse_sdp",
]

DEFAULT_MAX_BYTES = 65536
DEFAULT_MAX_MEDIA = 16


class SdpError(ValueError):
    """The description cannot be used: malformed media lines, bad payload types, oversize input."""


class RtpMap(NamedTuple):
    encoding: str
    clock_rate: int
    channels: int | None = None


# RFC 3551 static payload types: what a format number means when no a=rtpmap says otherwise
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap("PCMU", 8000),
    3: RtpMap("GSM", 8000),
    4: RtpMap("G723", 8000),
    8: RtpMap("PCMA", 8000),
    9: RtpMap("G722", 8000),
    10: RtpMap("L16", 44100, 2),
    11: RtpMap("L16", 44100),
    14: RtpMap("MPA", 90000),
    18: RtpMap("G729", 8000),
    26: RtpMap("JPEG", 90000),
    31: RtpMap("H261", 90000),
    32: RtpMap("MPV", 90000),
    33: RtpMap("MP2T", 90000),
    34: RtpMap("H263", 90000),
}

Attribute = tuple[str, str | None]


@dataclass(slots=True)
class Origin:
    username: str = "-"
    session_id: str = "0"
    session_version: str = "0"
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    def encode(self) -> str:
        return " ".join(
            (self.username, self.session_id, self.session_version, self.nettype, self.addrtype, self.address)
        )


@dataclass(slots=True)
class Connection:
    """A ``c=`` line; a multicast ``address`` keeps its ``/ttl[/count]`` suffix as written."""

    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def encode(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


def _first(attributes: list[Attribute], name: str) -> str | None:
    for key, value in attributes:
        if key == name:
            return "" if value is None else value
    return None


@dataclass(slots=True)
class MediaDescription:
    """One ``m=`` section. ``formats`` are strings because non-RTP protocols use names there."""

    kind: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    title: str | None = None
    connection: Connection | None = None
    bandwidths: list[tuple[str, int]] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        """The first value of attribute ``name``: "" for a flag such as ``a=recvonly``, None if absent."""
        return _first(self.attributes, name)

    def attribute_values(self, name: str) -> list[str]:
        """Every value of a repeatable attribute (``candidate``, ``ssrc``, ``extmap``...)."""
        return ["" if v is None else v for k, v in self.attributes if k == name]

    @property
    def control(self) -> str | None:
        return self.attribute("control")

    def rtpmap(self) -> dict[int, RtpMap]:
        """Payload type -> encoding for each format, from a=rtpmap or the static table.

        Lines that do not parse are skipped: a camera's odd rtpmap for one format should not cost
        the other formats.
        """
        out: dict[int, RtpMap] = {}
        for value in self.attribute_values("rtpmap"):
            number, _, spec = value.strip().partition(" ")
            parts = [p.strip() for p in spec.strip().split("/")]
            clock_rate = _uint(parts[1], 9) if len(parts) >= 2 else None
            if _is_payload_type(number) and parts[0] and clock_rate is not None:
                channels = _uint(parts[2], 3) if len(parts) >= 3 else None
                out.setdefault(int(number), RtpMap(parts[0], clock_rate, channels))
        for fmt in self.formats:
            if _is_payload_type(fmt) and int(fmt) in STATIC_PAYLOAD_TYPES:
                out.setdefault(int(fmt), STATIC_PAYLOAD_TYPES[int(fmt)])
        return out

    def fmtp(self) -> dict[int, dict[str, str]]:
        """Payload type -> format parameters, keys lowercased, values as written.

        ``a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z0IAH5WoFAFuQA==,aM48gA==;`` gives
        ``{96: {"packetization-mode": "1", "sprop-parameter-sets": "Z0IAH5WoFAFuQA==,aM48gA=="}}``:
        split on ``;`` then on the first ``=`` only, so base64 padding survives.
        """
        out: dict[int, dict[str, str]] = {}
        for value in self.attribute_values("fmtp"):
            number, _, spec = value.strip().partition(" ")
            if not _is_payload_type(number):
                continue
            params = out.setdefault(int(number), {})
            for item in spec.split(";"):
                key, _, val = item.strip().partition("=")
                if key.strip():
                    params.setdefault(key.strip().lower(), val.strip())
        return out


@dataclass(slots=True)
class SessionDescription:
    version: int = 0
    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    information: str | None = None
    connection: Connection | None = None
    bandwidths: list[tuple[str, int]] = field(default_factory=list)
    timing: tuple[int, int] = (0, 0)
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        """The first session-level value of ``name``: "" for a flag, None if absent."""
        return _first(self.attributes, name)

    @property
    def control(self) -> str | None:
        return self.attribute("control")

    def encode(self) -> str:
        """The description as SDP text with CRLF line ends; raises SdpError on a CR or LF in a value."""
        lines = [
            f"v={self.version}",
            f"o={self.origin.encode()}",
            f"s={self.session_name or '-'}",  # an empty s= is invalid; RFC 8866 suggests "-"
        ]
        if self.information is not None:
            lines.append(f"i={self.information}")
        if self.connection is not None:
            lines.append(f"c={self.connection.encode()}")
        lines += [f"b={kind}:{value}" for kind, value in self.bandwidths]
        lines.append(f"t={self.timing[0]} {self.timing[1]}")
        lines += _attribute_lines(self.attributes)
        for m in self.media:
            port = f"{m.port}/{m.port_count}" if m.port_count is not None else str(m.port)
            lines.append(" ".join([f"m={m.kind}", port, m.proto, *m.formats]))
            if m.title is not None:
                lines.append(f"i={m.title}")
            if m.connection is not None:
                lines.append(f"c={m.connection.encode()}")
            lines += [f"b={kind}:{value}" for kind, value in m.bandwidths]
            lines += _attribute_lines(m.attributes)
        for line in lines:
            if "\r" in line or "\n" in line:
                raise SdpError(f"CR or LF inside an SDP value: {line[:120]!r}")
        return "\r\n".join(lines) + "\r\n"


def _attribute_lines(attributes: list[Attribute]) -> list[str]:
    return [f"a={name}" if value is None else f"a={name}:{value}" for name, value in attributes]


def _uint(text: str, max_digits: int) -> int | None:
    """A plain decimal of at most ``max_digits`` digits, or None (no signs, spaces or Unicode digits)."""
    if text.isascii() and text.isdigit() and len(text) <= max_digits:
        return int(text)
    return None


def _is_payload_type(text: str) -> bool:
    number = _uint(text, 3)
    return number is not None and number <= 127


def parse_sdp(
    text: str | bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_media: int = DEFAULT_MAX_MEDIA
) -> SessionDescription:
    """Parse SDP leniently; raise SdpError for what cannot be used.

    Unknown or malformed lines other than ``m=`` are skipped (cameras send vendor lines, and a
    garbled ``o=`` or ``b=`` does not affect the media), and missing ``v=/o=/s=/t=`` take defaults.
    """
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise SdpError(f"SDP of {size} bytes exceeds the {max_bytes}-byte limit")
    if isinstance(text, bytes):
        text = _decode(text)
    sdp = SessionDescription()
    media: MediaDescription | None = None
    for raw in text.split("\n"):
        kind, eq, value = raw.strip().partition("=")
        kind = kind.strip()
        if not eq or len(kind) != 1:
            continue
        value = value.strip()
        if kind == "m":
            if len(sdp.media) >= max_media:
                raise SdpError(f"more than {max_media} media descriptions")
            media = _media(value)
            sdp.media.append(media)
        elif kind == "a":
            name, colon, attr = value.partition(":")
            target = media.attributes if media is not None else sdp.attributes
            target.append((name.strip(), attr.strip() if colon else None))
        elif kind == "c":
            connection = _connection(value)
            if media is not None:
                media.connection = connection or media.connection
            else:
                sdp.connection = connection or sdp.connection
        elif kind == "b":
            bandwidth = _bandwidth(value)
            if bandwidth is not None:
                (media.bandwidths if media is not None else sdp.bandwidths).append(bandwidth)
        elif kind == "i":
            if media is not None:
                media.title = value
            else:
                sdp.information = value
        elif media is not None:
            continue  # session-level lines repeated inside a media section: ignore
        elif kind == "v" and _uint(value, 3) is not None:
            sdp.version = int(value)
        elif kind == "o":
            sdp.origin = _origin(value)
        elif kind == "s":
            sdp.session_name = value or "-"
        elif kind == "t":
            parts = value.split()
            times = [_uint(p, 20) for p in parts]
            if len(times) == 2 and times[0] is not None and times[1] is not None:
                sdp.timing = (times[0], times[1])
    return sdp


def _decode(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data.decode("latin-1")  # camera session names are sometimes Latin-1


def _media(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"malformed m= line {value[:120]!r}: want <media> <port> <proto> <fmt>...")
    kind, port_text, proto, formats = parts[0], parts[1], parts[2], parts[3:]
    port_text, slash, count_text = port_text.partition("/")
    if not _is_port(port_text) or (slash and not _is_port(count_text)):
        raise SdpError(f"bad port {parts[1][:20]!r} in m= line {value[:120]!r}")
    if "RTP/" in proto.upper():
        if not formats:
            raise SdpError(f"m= line without payload types: {value[:120]!r}")
        for fmt in formats:
            if not _is_payload_type(fmt):
                raise SdpError(f"bad RTP payload type {fmt[:20]!r} in m= line {value[:120]!r}")
    return MediaDescription(kind, int(port_text), proto, formats, int(count_text) if slash else None)


def _is_port(text: str) -> bool:
    number = _uint(text, 5)
    return number is not None and number <= 65535


def _connection(value: str) -> Connection | None:
    parts = value.split()
    return Connection(*parts) if len(parts) == 3 else None


def _bandwidth(value: str) -> tuple[str, int] | None:
    kind, colon, amount = value.partition(":")
    number = _uint(amount.strip(), 12)
    if not colon or number is None:
        return None
    return kind.strip(), number


def _origin(value: str) -> Origin:
    # some cameras drop trailing fields; keep the ones there and default the rest
    return Origin(*value.split()[:6])
