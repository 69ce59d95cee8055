"""RTSP authentication, Basic and Digest (RFC 2617, RFC 7616), for both ends of a connection.

Digest comes in two dialects in the field: RFC 2069 style without qop (live555 and so VLC, most
cameras) and RFC 2617 style with ``qop=auth``, cnonce and nc (ffmpeg when offered), so both are
verified and both are produced. Server nonces are stateless, a timestamp plus an HMAC of it: a
flood of unauthenticated requests fills no table, and an expired nonce of ours is told apart from a
forged one so the client can be asked to retry (``stale=TRUE``) rather than be refused. The price of
statelessness is that a captured header can be replayed until its nonce expires; keep the TTL short.
Time is passed in (``now``, seconds) so this stays free of clocks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from .message import RtspError

__all__ = [
    "AuthResult",
    "Challenge",
    "Credentials",
    "DigestAuthority",
    "authorization_header",
    "basic_challenge",
    "parse_authorization",
    "parse_www_authenticate",
]

_HASHES = {"MD5": "md5", "SHA-256": "sha256"}  # Digest algorithm names -> hashlib names
_NONCE_TIME_DIGITS = 16
_NONCE_MAC_DIGITS = 32
_CLOCK_SLACK = 5.0  # seconds a nonce may appear to come from the future (clock steps)


class AuthResult(Enum):
    OK = "ok"
    DENIED = "denied"  # wrong password, user, realm, or a nonce we never issued: challenge anew
    STALE = "stale"  # right password on an expired nonce of ours: challenge with stale=TRUE


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _hash(algorithm: str, text: str) -> str:
    return hashlib.new(_HASHES[algorithm], text.encode()).hexdigest()


def _digest(
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: str | None,
    cnonce: str | None,
) -> str | None:
    """The Digest ``response`` value, or None for an algorithm or qop this module does not do."""
    algorithm = algorithm.upper()
    session = algorithm.endswith("-SESS")
    base = algorithm.removesuffix("-SESS")
    if base not in _HASHES or (session and cnonce is None):
        return None
    ha1 = _hash(base, f"{username}:{realm}:{password}")
    if session:
        ha1 = _hash(base, f"{ha1}:{nonce}:{cnonce}")
    ha2 = _hash(base, f"{method}:{uri}")
    if qop is None:
        return _hash(base, f"{ha1}:{nonce}:{ha2}")
    if qop.lower() != "auth" or nc is None or cnonce is None:
        return None
    return _hash(base, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop.lower()}:{ha2}")


def _auth_params(value: str) -> list[tuple[str, dict[str, str]]]:
    """``[(scheme, params)]`` from a challenge list or a credentials header, leniently.

    A token followed by ``=`` is a parameter of the current scheme, any other token starts a new
    scheme. Values may be quoted (with backslash escapes, commas inside) or bare up to the next comma,
    which also copes with cameras that send ``realm=IP Camera`` unquoted.
    """
    out: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        start = i
        while i < n and value[i] not in ' \t,="':
            i += 1
        token = value[start:i]
        j = i
        while j < n and value[j] in " \t":
            j += 1
        if token and out and j < n and value[j] == "=":
            i = j + 1
            while i < n and value[i] in " \t":
                i += 1
            if i < n and value[i] == '"':
                chars: list[str] = []
                i += 1
                while i < n and value[i] != '"':
                    if value[i] == "\\" and i + 1 < n:
                        i += 1
                    chars.append(value[i])
                    i += 1
                i += 1  # the closing quote (an unterminated string runs to the end)
                param = "".join(chars)
            else:
                start = i
                while i < n and value[i] != ",":
                    i += 1
                param = value[start:i].strip()
            out[-1][1].setdefault(token.lower(), param)
        elif token:
            out.append((token.lower(), {}))
        elif i < n:
            i += 1  # a stray '=' or '"'
    return out


# ---------------------------------------------------------------------------------------- server side


@dataclass(frozen=True, slots=True)
class Credentials:
    """What an Authorization header claims; check it with ``verify`` or ``DigestAuthority.verify``."""

    scheme: str  # "basic" or "digest"
    username: str
    password: str | None = None  # Basic only
    realm: str | None = None
    nonce: str | None = None
    uri: str | None = None
    response: str | None = None
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    def verify(self, password: str, method: str) -> bool:
        """Whether ``password`` is the one these credentials prove, compared in constant time.

        For Digest this checks the response alone; whether the nonce is ours and fresh is
        ``DigestAuthority.verify``'s business.
        """
        if self.scheme == "basic":
            return hmac.compare_digest((self.password or "").encode(), password.encode())
        expected = _digest(
            self.algorithm,
            self.username,
            self.realm or "",
            password,
            method,
            self.uri or "",
            self.nonce or "",
            self.qop,
            self.nc,
            self.cnonce,
        )
        if expected is None:
            return False
        return hmac.compare_digest(expected.encode(), (self.response or "").lower().encode())


def parse_authorization(value: str) -> Credentials:
    """Parse an Authorization header: ``Basic <base64>`` or ``Digest k=v, ...``.

    Raises ``RtspError`` 400 when it is malformed and 401 for a scheme other than these two.
    """
    scheme, _, rest = value.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        return _basic_credentials(rest.strip())
    if scheme != "digest":
        raise RtspError(401, f"unsupported authorization scheme {scheme[:20]!r}")
    items = _auth_params(value)
    params = items[0][1] if items else {}
    for key in ("username", "realm", "nonce", "uri", "response"):
        if key not in params:
            raise RtspError(400, f"Digest authorization without {key}")
    qop = params.get("qop")
    if qop is not None and ("nc" not in params or "cnonce" not in params):
        raise RtspError(400, "Digest authorization with qop but without nc or cnonce")
    return Credentials(
        "digest",
        params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=params.get("algorithm", "MD5").upper(),
        qop=qop,
        nc=params.get("nc"),
        cnonce=params.get("cnonce"),
        opaque=params.get("opaque"),
    )


def _basic_credentials(token: str) -> Credentials:
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise RtspError(400, "Basic authorization that is not base64") from None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    user, colon, password = text.partition(":")
    if not colon:
        raise RtspError(400, "Basic authorization without a user:password pair")
    return Credentials("basic", user, password=password)


def basic_challenge(realm: str) -> str:
    """A WWW-Authenticate value asking for Basic credentials."""
    return f"Basic realm={_quote(realm)}"


class DigestAuthority:
    """Issues Digest challenges and judges the answers, without remembering any nonce.

    ``qop=True`` offers ``qop="auth"``; clients that ignore it (live555) are still accepted, since
    verification takes whichever dialect the client answered in.
    """

    __slots__ = ("realm", "nonce_ttl", "algorithm", "qop", "_secret")

    def __init__(
        self, realm: str, secret: bytes, nonce_ttl: float = 300, *, algorithm: str = "MD5", qop: bool = False
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the Digest nonce secret needs at least 16 bytes")
        if algorithm.upper() not in _HASHES:
            raise ValueError(f"unsupported Digest algorithm {algorithm!r} (want MD5 or SHA-256)")
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self.algorithm = algorithm.upper()
        self.qop = qop
        self._secret = secret

    def _mac(self, stamp: str) -> str:
        message = f"{stamp}:{self.realm}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:_NONCE_MAC_DIGITS]

    def nonce(self, now: float) -> str:
        stamp = f"{max(0, int(now)):0{_NONCE_TIME_DIGITS}x}"
        return stamp + self._mac(stamp)

    def challenge(self, now: float, *, stale: bool = False) -> str:
        """A WWW-Authenticate value; ``stale`` after ``verify`` said ``AuthResult.STALE``."""
        parts = [f"Digest realm={_quote(self.realm)}", f'nonce="{self.nonce(now)}"']
        if self.algorithm != "MD5":  # some cameras' clients choke on any algorithm parameter
            parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append('qop="auth"')
        if stale:
            parts.append("stale=TRUE")
        return ", ".join(parts)

    def nonce_age(self, nonce: str, now: float) -> float | None:
        """Seconds since we issued ``nonce``, or None when we did not issue it."""
        if len(nonce) != _NONCE_TIME_DIGITS + _NONCE_MAC_DIGITS:
            return None
        stamp, mac = nonce[:_NONCE_TIME_DIGITS], nonce[_NONCE_TIME_DIGITS:]
        if not hmac.compare_digest(mac.encode(), self._mac(stamp).encode()):
            return None
        age = now - int(stamp, 16)
        return None if age < -_CLOCK_SLACK else max(0.0, age)

    def verify(self, credentials: Credentials, password: str, method: str, now: float) -> AuthResult:
        """Judge credentials for a user whose password is ``password``; Basic ones are judged too."""
        if credentials.scheme == "basic":
            return AuthResult.OK if credentials.verify(password, method) else AuthResult.DENIED
        if credentials.realm != self.realm:
            return AuthResult.DENIED
        age = self.nonce_age(credentials.nonce or "", now)
        if age is None or not credentials.verify(password, method):
            return AuthResult.DENIED
        return AuthResult.STALE if age > self.nonce_ttl else AuthResult.OK


# ---------------------------------------------------------------------------------------- client side


@dataclass(slots=True)
class Challenge:
    """One challenge of a WWW-Authenticate header: a lowercase scheme and lowercase-named params."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def nonce(self) -> str | None:
        return self.params.get("nonce")

    @property
    def algorithm(self) -> str:
        return self.params.get("algorithm", "MD5").upper()

    @property
    def qop(self) -> list[str]:
        return [q.strip().lower() for q in self.params.get("qop", "").split(",") if q.strip()]

    @property
    def stale(self) -> bool:
        return self.params.get("stale", "").lower() == "true"


def parse_www_authenticate(values: list[str]) -> list[Challenge]:
    """Every challenge of every WWW-Authenticate header, in order; unknown schemes are kept too."""
    return [Challenge(scheme, params) for value in values for scheme, params in _auth_params(value)]


def _usable_digest(challenge: Challenge) -> bool:
    if challenge.scheme != "digest" or challenge.nonce is None:
        return False
    if challenge.algorithm.removesuffix("-SESS") not in _HASHES:
        return False
    return not challenge.qop or "auth" in challenge.qop


def authorization_header(
    challenges: Challenge | Sequence[Challenge],
    user: str,
    password: str,
    method: str,
    uri: str,
    *,
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """An Authorization value answering the best challenge: the first usable Digest, else Basic.

    ``nc`` counts the requests made with this nonce (the caller keeps the count); ``cnonce`` is
    random unless given. Raises ``RtspError`` 401 when no challenge can be answered.
    """
    if isinstance(challenges, Challenge):
        challenges = [challenges]
    for c in challenges:
        if _usable_digest(c):
            return _digest_header(c, user, password, method, uri, cnonce or secrets.token_hex(8), nc)
    for c in challenges:
        if c.scheme == "basic":
            return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    schemes = ", ".join(c.scheme for c in challenges) or "none"
    raise RtspError(401, f"no supported authentication challenge (offered: {schemes})")


def _digest_header(
    c: Challenge, user: str, password: str, method: str, uri: str, cnonce: str, nc: int
) -> str:
    nonce = c.nonce or ""
    qop = "auth" if c.qop else None
    session = c.algorithm.endswith("-SESS")
    nc_text = f"{nc:08x}" if qop else None
    use_cnonce = cnonce if (qop or session) else None
    response = _digest(c.algorithm, user, c.realm, password, method, uri, nonce, qop, nc_text, use_cnonce)
    parts = [
        f"username={_quote(user)}",
        f"realm={_quote(c.realm)}",
        f"nonce={_quote(nonce)}",
        f"uri={_quote(uri)}",
        f'response="{response}"',
    ]
    if "algorithm" in c.params:
        parts.append(f"algorithm={c.algorithm}")
    if "opaque" in c.params:
        parts.append(f"opaque={_quote(c.params['opaque'])}")
    if qop:
        parts += [f"qop={qop}", f"nc={nc_text}"]
    if use_cnonce:
        parts.append(f"cnonce={_quote(use_cnonce)}")
    return "Digest " + ", ".join(parts)
