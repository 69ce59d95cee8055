"""JSON Web Tokens (PyJWT) that grant actions on paths until they expire.

A token is accepted only if its ``alg`` is on an explicit allow-list that matches the kind of key
configured: HS* for a shared secret; RS*/PS*/ES*/EdDSA for a PEM public key or a JWKS. The two
families are never mixed, so a token "signed" with HS256 using the public key as the HMAC secret
(the classic algorithm confusion) is refused before any signature is computed, and ``none`` is
never on any list. Time comes from the injected clock, not PyJWT's, so ``exp`` is checked by us:
it is required, ``nbf`` and ``iat`` are honoured when present, all with ``leeway``.
``verified_claims`` runs all of that and the ``aud``/``iss`` checks, but not the path claims,
synchronously, for token formats with claims of their own (the SFU's room tokens); it needs a
secret or a public key, not a JWKS, which only the async ``verify`` can fetch.

Claims: ``actions`` (list of "publish", "read", "api"; absent grants nothing) and ``paths``
(list of patterns as in ``patterns.py``; absent grants every path). ``aud`` and ``iss`` are
required to match when configured.

JWKS: fetched (5 s timeout), cached for ``jwks_refresh``, keys picked by ``kid`` (a token
without ``kid`` is accepted only when the set has a single key). An unknown ``kid`` triggers a
refetch, but fetches happen at most once per 30 s whatever the cause, so random ``kid``s cannot
make us hammer the identity provider; when a fetch fails the last good keys stay in use.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from ..config import JwtConfig
from .client import SessionFactory
from .patterns import path_allowed

__all__ = [
    "WRONG_ACTION",
    "WRONG_PATH",
    "FetchJwks",
    "JwtVerifier",
    "TokenRefused",
    "http_fetcher",
    "load_public_key",
]

log = logging.getLogger("streamhive.auth")

#: Reasons meaning "the token is genuine but does not cover this request" (403, not 401).
WRONG_ACTION = "wrong action"
WRONG_PATH = "wrong path"

FetchJwks = Callable[[str], Awaitable[Any]]
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey

_MAX_TOKEN = 8192
_JWKS_TIMEOUT = 5.0
_JWKS_MIN_INTERVAL = 30.0
_FAMILIES = {"HS": "oct", "RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


class TokenRefused(Exception):
    """A token that is not genuine or not current; ``reason`` is what ``verify`` would return."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _family(algorithm: str) -> str | None:
    """The key type an algorithm needs ("oct", "RSA", "EC", "OKP"), None for unknown ones."""
    if algorithm not in jwt.algorithms.get_default_algorithms():
        return None
    return _FAMILIES.get(algorithm[:2])


def _key_family(key: object) -> str | None:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC"
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "OKP"
    return None


def load_public_key(value: str) -> PublicKey:
    """A PEM public key or certificate, given inline or as a file name; ValueError otherwise."""
    try:
        pem = value.encode() if value.lstrip().startswith("-----BEGIN") else Path(value).read_bytes()
    except OSError as exc:
        raise ValueError(f"jwt public_key: cannot read {value!r}: {exc.strerror}") from None
    try:
        key: object = (
            x509.load_pem_x509_certificate(pem).public_key()
            if b"BEGIN CERTIFICATE" in pem
            else serialization.load_pem_public_key(pem)
        )
    except ValueError as exc:
        raise ValueError(f"jwt public_key: not a PEM public key or certificate: {exc}") from None
    if _key_family(key) is None:
        raise ValueError("jwt public_key: only RSA, EC and Ed25519/Ed448 keys are supported")
    return key  # type: ignore[return-value]


def http_fetcher(session_factory: SessionFactory) -> FetchJwks:
    """Fetch JSON with a shared aiohttp session (5 s in all); any non-2xx raises."""

    async def fetch(url: str) -> Any:
        timeout = aiohttp.ClientTimeout(total=_JWKS_TIMEOUT)
        async with session_factory().get(url, timeout=timeout, allow_redirects=False) as response:
            response.raise_for_status()
            return await response.json(content_type=None)

    return fetch


async def _fetch_standalone(url: str) -> Any:
    async with aiohttp.ClientSession() as session:
        return await http_fetcher(lambda: session)(url)


class JwtVerifier:
    """Checks tokens against one ``JwtConfig``; ``verify`` returns None or a refusal reason."""

    def __init__(
        self,
        config: JwtConfig,
        clock: Callable[[], float] = time.time,
        fetch_jwks: FetchJwks | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._fetch = fetch_jwks or _fetch_standalone
        self._static_key: bytes | PublicKey | None = None
        self._jwks: dict[str | None, tuple[PublicKey, str | None]] = {}
        self._jwks_fetched = -math.inf
        self._jwks_attempted = -math.inf
        self._jwks_lock = asyncio.Lock()
        if config.secret is not None:
            self._static_key = config.secret.encode()
            families = {"oct"}
            default = ["HS256"]
        elif config.public_key is not None:
            self._static_key = load_public_key(config.public_key)
            families = {_key_family(self._static_key) or ""}
            default = ["RS256", "ES256"]
        else:
            families = {"RSA", "EC", "OKP"}
            default = ["RS256", "ES256"]
        self.algorithms = tuple(config.algorithms or default)
        for algorithm in self.algorithms:
            family = _family(algorithm)
            if family is None:
                raise ValueError(f"jwt: unknown algorithm {algorithm!r}")
            if (family == "oct") != ("oct" in families):
                raise ValueError(
                    f"jwt: algorithm {algorithm!r} does not fit the configured key "
                    "(HS* needs a secret; RS*/PS*/ES*/EdDSA need public keys)"
                )
        if not any(_family(a) in families for a in self.algorithms):
            raise ValueError(f"jwt: none of {list(self.algorithms)} can be verified with the configured key")

    def verified_claims(self, token: str) -> dict[str, Any]:
        """The claims of a genuine, current token, checked against the configured secret or public key.

        Synchronous, for sans-IO callers (room tokens) that read their own claims; a JWKS needs
        fetching, so it is only usable through ``verify``. Raises ``TokenRefused``.
        """
        if self._static_key is None:
            raise ValueError("verified_claims needs a secret or public_key (JWKS keys are fetched by verify)")
        algorithm, _ = self._header(token)
        return self._decode(token, algorithm, self._static_key)

    async def verify(self, token: str, action: str, path: str) -> str | None:
        """None when ``token`` is genuine, current and grants ``action`` on ``path``."""
        try:
            algorithm, header = self._header(token)
            key = self._static_key
            if key is None:
                key = await self._jwks_signing_key(header, algorithm)
            claims = self._decode(token, algorithm, key)
        except TokenRefused as exc:
            return exc.reason
        return _check_grant(claims, action, path)

    def _header(self, token: str) -> tuple[str, dict[str, Any]]:
        """The token's ``alg``, known to be on the allow-list, and its whole (unverified) header."""
        if not token or len(token) > _MAX_TOKEN or not token.isascii():
            raise TokenRefused("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRefused("malformed") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            raise TokenRefused("algorithm not allowed")
        return algorithm, header

    async def _jwks_signing_key(self, header: dict[str, Any], algorithm: str) -> PublicKey:
        """The JWKS key named by the header's ``kid``, if it may sign with ``algorithm``."""
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRefused("malformed")
        found = await self._jwks_key(kid)
        if found is None:
            raise TokenRefused("unknown key")
        key, key_algorithm = found
        if key_algorithm is not None and key_algorithm != algorithm:
            raise TokenRefused("algorithm not allowed")
        return key

    def _decode(self, token: str, algorithm: str, key: bytes | PublicKey) -> dict[str, Any]:
        """Signature (with a key of the algorithm's own family), aud/iss, then the times."""
        if _family(algorithm) != ("oct" if isinstance(key, bytes) else _key_family(key)):
            raise TokenRefused("algorithm not allowed")
        config = self._config
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=config.audience,
                issuer=config.issuer,
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": config.audience is not None,
                    "verify_iss": config.issuer is not None,
                },
            )
        except jwt.InvalidSignatureError:
            raise TokenRefused("bad signature") from None
        except jwt.InvalidAudienceError:
            raise TokenRefused("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise TokenRefused("wrong issuer") from None
        except (jwt.InvalidAlgorithmError, jwt.InvalidKeyError):
            raise TokenRefused("algorithm not allowed") from None
        except jwt.PyJWTError:
            raise TokenRefused("malformed") from None
        self._check_times(claims)
        return claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        leeway = self._config.leeway
        times: dict[str, float] = {}
        for name in ("exp", "nbf", "iat"):
            value = claims.get(name)
            if value is None:
                continue
            # bool is an int, and json accepts NaN/Infinity: neither is a time.
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise TokenRefused("malformed")
            times[name] = value
        if "exp" not in times:
            raise TokenRefused("malformed")
        if now > times["exp"] + leeway:
            raise TokenRefused("expired")
        if now + leeway < times.get("nbf", -math.inf) or now + leeway < times.get("iat", -math.inf):
            raise TokenRefused("not yet valid")

    async def _jwks_key(self, kid: str | None) -> tuple[PublicKey, str | None] | None:
        stale = self._clock() - self._jwks_fetched >= self._config.jwks_refresh
        if stale or self._lookup(kid) is None:
            async with self._jwks_lock:
                if self._clock() - self._jwks_attempted >= _JWKS_MIN_INTERVAL:
                    await self._refresh()
        return self._lookup(kid)

    def _lookup(self, kid: str | None) -> tuple[PublicKey, str | None] | None:
        if kid is None and len(self._jwks) == 1:
            return next(iter(self._jwks.values()))
        return self._jwks.get(kid) if kid is not None else None

    async def _refresh(self) -> None:
        url = self._config.jwks_url
        assert url is not None
        self._jwks_attempted = self._clock()
        try:
            document = await self._fetch(url)
        except Exception as exc:  # the provider being down must not break token checks
            log.warning("JWKS fetch from %s failed (%s); keeping %d known keys", url, exc, len(self._jwks))
            return
        keys = _parse_jwks(document)
        if keys:
            self._jwks = keys
            self._jwks_fetched = self._clock()
        else:
            log.warning(
                "JWKS from %s has no usable signing keys; keeping %d known keys", url, len(self._jwks)
            )


def _check_grant(claims: dict[str, Any], action: str, path: str) -> str | None:
    """None when the ``actions`` and ``paths`` claims cover ``action`` on ``path``."""
    actions = claims.get("actions", [])
    paths = claims.get("paths")
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        return "malformed"
    if paths is not None and (not isinstance(paths, list) or not all(isinstance(p, str) for p in paths)):
        return "malformed"
    if action not in actions:
        return WRONG_ACTION
    if paths is not None and not path_allowed(paths, path):
        return WRONG_PATH
    return None


def _parse_jwks(document: Any) -> dict[str | None, tuple[PublicKey, str | None]]:
    """Usable public signing keys by ``kid``; symmetric (``oct``) and encryption keys are skipped."""
    entries = document.get("keys") if isinstance(document, dict) else None
    keys: dict[str | None, tuple[PublicKey, str | None]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if entry.get("use", "sig") != "sig":
            continue
        kid, algorithm = entry.get("kid"), entry.get("alg")
        try:
            key = jwt.PyJWK(entry).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        if _key_family(key) is None:
            continue
        keys[kid if isinstance(kid, str) else None] = (key, algorithm if isinstance(algorithm, str) else None)
    return keys
