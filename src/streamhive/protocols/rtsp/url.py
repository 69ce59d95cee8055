"""RTSP URLs: parsing with credentials, SDP control resolution, and request URIs to stream paths.

Control resolution follows what ffmpeg, VLC (live555) and gortsplib do rather than RFC 3986: a
relative control is appended to the base with one ``/`` between, even after a query
(``rtsp://h/cam?x=1`` + ``trackID=1`` gives ``rtsp://h/cam?x=1/trackID=1``), so a server must also
find the control there when it splits a SETUP URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote

from .message import RtspError

__all__ = ["DEFAULT_PORTS", "RtspUrl", "path_of", "resolve_control", "split_control"]

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}

_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_BAD_HOST = re.compile(r"[\x00-\x20\x7f/?@\[\]]")


@dataclass(frozen=True, slots=True)
class RtspUrl:
    """An ``rtsp://`` or ``rtsps://`` URL; ``path`` and ``query`` stay percent-encoded as given.

    ``str()`` and ``repr()`` leave the password out, so a URL can be logged as it is.
    """

    scheme: str
    host: str  # IPv6 without brackets
    port: int
    path: str = ""
    query: str = ""
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> RtspUrl:
        """Parse, percent-decoding the credentials; raises ``RtspError`` (a ValueError) 400.

        As with ffmpeg, the host part ends at the first ``/`` or ``?``, so credentials holding one
        of those (or ``@``) must be percent-encoded; ``#`` is kept as an ordinary character.
        """
        text = url.strip()
        scheme, sep, rest = text.partition("://")
        scheme = scheme.lower()
        if not sep:
            raise RtspError(400, "not a URL: want rtsp://host[:port]/path")
        if scheme not in DEFAULT_PORTS:
            raise RtspError(400, f"unsupported URL scheme {scheme[:20]!r}: want rtsp:// or rtsps://")
        stops = [i for i in (rest.find("/"), rest.find("?")) if i >= 0]
        cut = min(stops, default=len(rest))
        authority, tail = rest[:cut], rest[cut:]
        user = password = None
        userinfo, at, hostport = authority.rpartition("@")
        if at:
            name, colon, secret = userinfo.partition(":")
            user = unquote(name)
            password = unquote(secret) if colon else None
        host, port = _host_port(hostport, DEFAULT_PORTS[scheme])
        path, _, query = tail.partition("?")
        return cls(scheme, host, port, path, query, user, password)

    def without_credentials(self) -> str:
        """The URL to put in requests and logs; the port is written only when not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{host}{port}{self.path}{query}"

    def __str__(self) -> str:
        return self.without_credentials()


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise RtspError(400, f"unterminated IPv6 address in {text[:80]!r}")
        host, after = text[1:close], text[close + 1 :]
        if after and not after.startswith(":"):
            raise RtspError(400, f"junk after the IPv6 address in {text[:80]!r}")
        port_text = after[1:]
    else:
        if text.count(":") > 1:
            raise RtspError(400, f"IPv6 address without brackets in {text[:80]!r}")
        host, _, port_text = text.partition(":")
    if not host or _BAD_HOST.search(host):
        raise RtspError(400, f"bad host {host[:80]!r}")
    if not port_text:
        return host, default_port
    if not (
        port_text.isascii() and port_text.isdigit() and len(port_text) <= 5 and 0 < int(port_text) < 65536
    ):
        raise RtspError(400, f"bad port {port_text[:20]!r}")
    return host, int(port_text)


def resolve_control(base: str, control: str) -> str:
    """The URL for an SDP ``a=control`` value, against Content-Base or else the DESCRIBE URL.

    ``*`` or nothing means the base itself; an absolute URL stands as it is; anything else is
    appended with exactly one ``/`` between (none before a ``?``), as live555 and ffmpeg do.
    """
    control = control.strip()
    if not control or control == "*":
        return base
    if _ABSOLUTE.match(control):
        return control
    if base.endswith("/") and control.startswith("/"):
        return base + control[1:]
    if base.endswith("/") or control.startswith(("/", "?")):
        return base + control
    return f"{base}/{control}"


def _target(uri: str) -> tuple[str, str]:
    """(path, query) of a request URI, absolute or a bare path, both still percent-encoded."""
    uri = uri.strip()
    if _ABSOLUTE.match(uri):
        rest = uri.split("://", 1)[1]
        stops = [i for i in (rest.find("/"), rest.find("?")) if i >= 0]
        uri = rest[min(stops) :] if stops else ""
    path, _, query = uri.partition("?")
    return path, query


def _clean(path: str) -> str:
    return "" if path == "*" else unquote(path).strip("/")


def path_of(uri: str) -> str:
    """The stream path a request URI names: ``rtsp://h:8554/live/cam?x=1`` gives ``live/cam``.

    Percent-decoded, without surrounding slashes or the query; ``*`` gives the empty path.
    """
    return _clean(_target(uri)[0])


def split_control(uri: str, controls: Iterable[str]) -> tuple[str, str | None]:
    """Split a SETUP URI into (stream path, which of ``controls`` it names, or None).

    The control may follow the path (``/live/cam/trackID=1?x=1``) or, as ffmpeg and gortsplib
    build it, the query (``/live/cam?x=1/trackID=1``). An absolute control is matched by its last
    segment. None means the URI names the stream itself (a single-track or aggregate SETUP).
    """
    path, query = _target(uri)
    path = path.rstrip("/")
    query = query.rstrip("/")
    candidates = []
    for control in set(controls):
        relative = control.rsplit("/", 1)[-1] if _ABSOLUTE.match(control) else control.strip("/")
        if relative and relative != "*":
            candidates.append((relative, control))
    for relative, control in sorted(candidates, key=lambda c: len(c[0]), reverse=True):
        suffix = "/" + relative
        if query.endswith(suffix):
            return _clean(path), control
        if path.endswith(suffix) or path == relative:
            return _clean(path[: -len(relative)]), control
    return _clean(path), None
