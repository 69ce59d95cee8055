"""Grammars of the RTSP header fields that carry structure: Transport, Session, Range, RTP-Info, Public.

Parsers accept what real clients and cameras send (lowercase keywords, stray spaces, trailing
semicolons, single ports where a pair is due) and raise ``RtspError`` with the status a server
should answer: 461 for a transport it cannot honour, 457 for a bad range, 400 for plain garbage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .message import RtspError

__all__ = [
    "ClockRange",
    "NptRange",
    "RtpInfo",
    "Transport",
    "format_rtp_info",
    "format_session",
    "parse_public",
    "parse_range",
    "parse_rtp_info",
    "parse_session",
    "parse_transports",
]

_PROFILES = ("AVP", "SAVP", "AVPF", "SAVPF")
_MODES = {"play": "play", "record": "record", "receive": "record"}  # RFC 2326 draft name for record
_DIGITS = re.compile(r"[0-9]{1,10}")


def _split_quoted(value: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes (a quoted mode or destination may hold one)."""
    parts: list[str] = []
    start = 0
    quoted = False
    for i, ch in enumerate(value):
        if ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return parts


def _number(text: str, what: str, status: int) -> int:
    text = text.strip()
    if not _DIGITS.fullmatch(text):
        raise RtspError(status, f"bad {what} {text[:40]!r}")
    return int(text)


@dataclass(slots=True)
class Transport:
    """One alternative of a Transport header (RFC 2326 section 12.39).

    Pairs are ``(rtp, rtcp)``. A single value where a pair is due is widened to ``(n, n + 1)``, and
    a pair that is not consecutive is kept as sent; both are recorded in ``notes`` for the logs.
    Neither ``unicast`` nor ``multicast`` reads as unicast: RFC 2326 says multicast, but no client
    that leaves it out means that. Parameters this class does not model are kept in ``extra`` so
    ``encode`` can pass them on.
    """

    profile: str = "RTP/AVP"
    lower: str = "UDP"
    multicast: bool = False
    interleaved: tuple[int, int] | None = None
    client_port: tuple[int, int] | None = None
    server_port: tuple[int, int] | None = None
    port: tuple[int, int] | None = None
    destination: str | None = None
    source: str | None = None
    ttl: int | None = None
    ssrc: int | None = None
    mode: str | None = None
    extra: list[tuple[str, str | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list, compare=False)

    def encode(self) -> str:
        parts = [self.profile + ("/TCP" if self.lower == "TCP" else "")]
        parts.append("multicast" if self.multicast else "unicast")
        if self.destination is not None:
            parts.append(f"destination={self.destination}")
        if self.source is not None:
            parts.append(f"source={self.source}")
        for name in ("interleaved", "client_port", "server_port", "port"):
            pair = getattr(self, name)
            if pair is not None:
                parts.append(f"{name}={pair[0]}-{pair[1]}")
        if self.ttl is not None:
            parts.append(f"ttl={self.ttl}")
        if self.ssrc is not None:
            parts.append(f"ssrc={self.ssrc:08X}")
        if self.mode is not None:
            parts.append(f"mode={self.mode}")
        parts.extend(name if value is None else f"{name}={value}" for name, value in self.extra)
        return ";".join(parts)


def parse_transports(value: str) -> list[Transport]:
    """Every comma-separated alternative, in the client's order of preference."""
    out = [_transport(spec) for spec in _split_quoted(value, ",") if spec.strip()]
    if not out:
        raise RtspError(461, "empty Transport header")
    return out


def _transport(spec: str) -> Transport:
    params = [p.strip() for p in _split_quoted(spec, ";")]
    params = [p for p in params if p]
    if not params:
        raise RtspError(461, f"empty transport specification {spec[:60]!r}")
    t = Transport()
    t.profile, t.lower = _profile(params[0])
    for param in params[1:]:
        name, eq, raw = param.partition("=")
        name = name.strip().lower()
        raw = raw.strip()
        if name in ("unicast", "multicast"):
            t.multicast = name == "multicast"
        elif not eq:
            t.extra.append((name, None))
        elif name == "interleaved":
            t.interleaved = _pair(raw, name, 255, t.notes)
        elif name in ("client_port", "server_port", "port"):
            setattr(t, name, _pair(raw, name, 65535, t.notes))
        elif name in ("destination", "source"):
            setattr(t, name, raw.strip('"'))
        elif name == "ttl":
            t.ttl = _number(raw, "ttl", 400)
            if t.ttl > 255:
                raise RtspError(461, f"ttl {t.ttl} outside 0..255")
        elif name == "ssrc":
            t.ssrc = _ssrc(raw)
        elif name == "mode":
            mode = _MODES.get(raw.strip('"').strip().lower())
            if mode is None:
                raise RtspError(461, f"unsupported transport mode {raw[:40]!r}")
            t.mode = mode
        else:
            t.extra.append((name, raw))
    return t


def _profile(spec: str) -> tuple[str, str]:
    parts = spec.upper().split("/")
    if len(parts) not in (2, 3) or parts[0] != "RTP" or parts[1] not in _PROFILES:
        raise RtspError(461, f"unsupported transport {spec[:60]!r} (want RTP/AVP[/UDP|/TCP])")
    lower = parts[2] if len(parts) == 3 else "UDP"
    if lower not in ("UDP", "TCP"):
        raise RtspError(461, f"unsupported lower transport {lower[:20]!r}")
    return f"RTP/{parts[1]}", lower


def _pair(raw: str, name: str, highest: int, notes: list[str]) -> tuple[int, int]:
    first, dash, second = raw.partition("-")
    a = _number(first, name, 400)
    if dash:
        b = _number(second, name, 400)
    else:
        b = a + 1
        notes.append(f"{name}={raw} is a single value; using {a}-{b}")
    if a > highest or b > highest:
        raise RtspError(461, f"{name}={raw} outside 0..{highest}")
    if b < a:
        raise RtspError(461, f"{name}={raw} is a descending range")
    if b != a + 1:
        notes.append(f"{name}={raw} is not a consecutive pair")
    elif name != "interleaved" and a % 2:
        notes.append(f"{name}={raw} starts on an odd port")
    return a, b


def _ssrc(raw: str) -> int:
    text = raw.strip().strip('"')
    if not 1 <= len(text) <= 8:
        raise RtspError(400, f"bad ssrc {raw[:40]!r}")
    try:
        return int(text, 16)
    except ValueError:
        raise RtspError(400, f"bad ssrc {raw[:40]!r}") from None


def parse_session(value: str) -> tuple[str, int | None]:
    """``(session id, timeout seconds or None)``; a garbled timeout is ignored, not fatal."""
    ident, *params = value.split(";")
    ident = ident.strip()
    if not ident:
        raise RtspError(400, "empty Session header")
    timeout = None
    for param in params:
        name, _, raw = param.partition("=")
        raw = raw.strip()
        if name.strip().lower() == "timeout" and _DIGITS.fullmatch(raw):
            timeout = int(raw)
    return ident, timeout


def format_session(ident: str, timeout: int | None = None) -> str:
    return ident if timeout is None else f"{ident};timeout={timeout}"


@dataclass(frozen=True, slots=True)
class NptRange:
    """Normal play time in seconds; ``start`` None means ``now`` (a live position)."""

    start: float | None
    end: float | None = None

    def encode(self) -> str:
        start = "now" if self.start is None else f"{self.start:.3f}"
        return f"npt={start}-" + ("" if self.end is None else f"{self.end:.3f}")


@dataclass(frozen=True, slots=True)
class ClockRange:
    """Absolute UTC times, as recorders and some cameras' playback APIs use them."""

    start: datetime
    end: datetime | None = None

    def encode(self) -> str:
        return f"clock={_clock_text(self.start)}-" + ("" if self.end is None else _clock_text(self.end))


_NPT_HMS = re.compile(r"([0-9]{1,8}):([0-9]{1,2}):([0-9]{1,2}(?:\.[0-9]{0,9})?)")
_NPT_SEC = re.compile(r"[0-9]{1,12}(?:\.[0-9]{0,9})?")
_CLOCK = re.compile(r"([0-9]{8})T([0-9]{6})(\.[0-9]{1,9})?Z")


def parse_range(value: str) -> NptRange | ClockRange:
    """The Range header: ``npt=now-``, ``npt=0.000-``, ``npt=1:02:03.5-70``, ``clock=...Z-``.

    Trailing parameters (``;time=``) are ignored; SMPTE and garbage raise 457 Invalid Range.
    """
    spec = value.split(";", 1)[0].strip()
    unit, eq, span = spec.partition("=")
    unit = unit.strip().lower()
    start_text, dash, end_text = span.partition("-")
    start_text, end_text = start_text.strip(), end_text.strip()
    if not eq or not dash:
        raise RtspError(457, f"bad Range {value[:80]!r}")
    if unit == "npt":
        start = _npt(start_text, value) if start_text else 0.0
        end = _npt(end_text, value) if end_text else None
        if start is not None and end is not None and end < start:
            raise RtspError(457, f"Range ends before it starts: {value[:80]!r}")
        return NptRange(start, end)
    if unit == "clock" and start_text:
        return ClockRange(_clock(start_text, value), _clock(end_text, value) if end_text else None)
    raise RtspError(457, f"unsupported Range {value[:80]!r} (want npt= or clock=)")


def _npt(text: str, value: str) -> float | None:
    if text.lower() == "now":
        return None
    if _NPT_SEC.fullmatch(text):
        return float(text)
    hms = _NPT_HMS.fullmatch(text)
    if hms and int(hms[2]) < 60 and float(hms[3]) < 60:
        return int(hms[1]) * 3600 + int(hms[2]) * 60 + float(hms[3])
    raise RtspError(457, f"bad npt time {text[:40]!r} in Range {value[:80]!r}")


def _clock(text: str, value: str) -> datetime:
    match = _CLOCK.fullmatch(text)
    if match:
        try:
            moment = datetime.strptime(match[1] + match[2], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            pass
        else:
            micros = round(float(match[3]) * 1_000_000) if match[3] else 0
            return moment.replace(microsecond=min(micros, 999_999))
    raise RtspError(457, f"bad clock time {text[:40]!r} in Range {value[:80]!r}")


def _clock_text(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    fraction = f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else ""
    return moment.strftime("%Y%m%dT%H%M%S") + fraction + "Z"


@dataclass(frozen=True, slots=True)
class RtpInfo:
    """Where each track's RTP starts: the first sequence number and RTP time after PLAY."""

    url: str
    seq: int | None = None
    rtptime: int | None = None


def format_rtp_info(entries: list[tuple[str, int | None, int | None]]) -> str:
    out = []
    for url, seq, rtptime in entries:
        text = f"url={url}"
        if seq is not None:
            text += f";seq={seq}"
        if rtptime is not None:
            text += f";rtptime={rtptime}"
        out.append(text)
    return ",".join(out)


# a URL may itself hold commas and semicolons, so split only where the next known key starts
_RTP_INFO_ENTRY = re.compile(r",\s*(?=url\s*=)", re.IGNORECASE)
_RTP_INFO_PARAM = re.compile(r";\s*(?=(?:seq|rtptime|ssrc)\s*=)", re.IGNORECASE)


def parse_rtp_info(value: str) -> list[RtpInfo]:
    """Entries of an RTP-Info header; a seq or rtptime that is missing or garbled becomes None.

    Cameras get the numbers wrong more often than the stream, and a client can do without them.
    """
    out = []
    for entry in _RTP_INFO_ENTRY.split(value.strip()):
        url: str | None = None
        seq = rtptime = None
        for param in _RTP_INFO_PARAM.split(entry.strip()):
            name, _, raw = param.partition("=")
            name = name.strip().lower()
            raw = raw.strip()
            if name == "url":
                url = raw.strip('"')
            elif name == "seq" and _DIGITS.fullmatch(raw) and int(raw) <= 0xFFFF:
                seq = int(raw)
            elif name == "rtptime" and _DIGITS.fullmatch(raw) and int(raw) <= 0xFFFFFFFF:
                rtptime = int(raw)
        if url:
            out.append(RtpInfo(url, seq, rtptime))
    return out


def parse_public(value: str) -> list[str]:
    """Method names of a Public (OPTIONS answer) header, uppercased for membership tests."""
    return [m.strip().upper() for m in value.split(",") if m.strip()]
