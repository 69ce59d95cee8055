"""Fuzz the access-control verifiers: whatever a client sends (tokens, signed-URL queries, user
names and passwords, paths), the answer is one of the module's own refusals or an allowance,
never another exception."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import jwt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamhive.auth import AuthRequest
from streamhive.auth.access import AccessControl, AccessDenied
from streamhive.auth.networks import client_key, in_networks, parse_networks
from streamhive.auth.passwords import verify_password
from streamhive.auth.patterns import path_allowed
from streamhive.auth.signed import check_signed, sign_query
from streamhive.auth.tokens import JwtVerifier
from streamhive.config import AuthConfig, JwtConfig, SignedUrlConfig

NOW = 1_700_000_000.0
SECRET = "an-hs256-secret-of-at-least-32-bytes!"
SIGN_SECRET = "signed-url-secret-0123456789"
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
claim_sets = st.fixed_dictionaries(
    {},
    optional={
        "exp": json_values | st.floats(NOW - 100, NOW + 100),
        "nbf": json_values | st.floats(NOW - 100, NOW + 100),
        "iat": json_values,
        "aud": json_values,
        "iss": json_values,
        "sub": json_values,
        "actions": json_values | st.lists(st.sampled_from(["read", "publish", "api", "x"]), max_size=3),
        "paths": json_values | st.lists(st.text(max_size=12), max_size=3),
    },
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["HS256", "RS256", "none", "HS512", "ES256", ""]) | json_values,
        "kid": json_values,
        "typ": json_values,
        "crit": json_values,
        "b64": json_values,
    },
)
paths = st.text(max_size=40) | st.sampled_from(["live/cam1", "live", "live/", "live/a/b", "a//b", ""])
actions = st.sampled_from(["read", "publish", "api"])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


VERIFIER = JwtVerifier(JwtConfig(secret=SECRET, audience="sh", issuer="idp"), lambda: NOW)
REFUSALS = {
    "malformed",
    "expired",
    "not yet valid",
    "bad signature",
    "wrong action",
    "wrong path",
    "wrong audience",
    "wrong issuer",
    "algorithm not allowed",
}


def check_verdict(verdict: object) -> None:
    assert verdict is None or verdict in REFUSALS, verdict


@FUZZ
@given(token=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_jwt_arbitrary_text(token: str) -> None:
    check_verdict(run(VERIFIER.verify(token, "read", "live/cam1")))


@FUZZ
@given(header=headers, claims=json_values, signature=st.binary(max_size=64), action=actions, path=paths)
def test_jwt_structured_garbage(header: Any, claims: Any, signature: bytes, action: str, path: str) -> None:
    token = ".".join(
        [b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), b64url(signature)]
    )
    verdict = run(VERIFIER.verify(token, action, path))
    assert verdict is not None  # nothing here knows the secret
    check_verdict(verdict)


@FUZZ
@given(claims=claim_sets, header=headers, action=actions, path=paths)
def test_jwt_genuinely_signed_odd_claims(
    claims: dict[str, Any], header: dict[str, Any], action: str, path: str
) -> None:
    extra = {k: v for k, v in header.items() if k not in ("alg", "typ")}
    try:
        token = jwt.encode(claims, SECRET, algorithm="HS256", headers=extra)
    except (TypeError, ValueError, jwt.PyJWTError):
        return  # PyJWT will not even make it
    check_verdict(run(VERIFIER.verify(token, action, path)))


@FUZZ
@given(
    query=st.text(max_size=200),
    expires=st.integers(-(10**15), 10**15),
    action=actions,
    path=paths,
    now=st.floats(0, 2e9),
)
def test_signed_url_arbitrary(query: str, expires: int, action: str, path: str, now: float) -> None:
    config = SignedUrlConfig(secret=SIGN_SECRET, max_validity=3600)
    reasons = {None, "missing", "malformed", "expired", "too far in the future", "bad signature"}
    assert check_signed(config, query, action, path, now) in reasons
    signed = sign_query(SIGN_SECRET, action, path, expires)
    assert check_signed(config, signed + "&" + query, action, path, now) in reasons
    assert check_signed(config, signed, action, path, now) in reasons


@FUZZ
@given(
    patterns=st.lists(st.text(max_size=20) | st.text(max_size=20).map(lambda t: "~" + t), max_size=4),
    path=paths,
)
def test_path_patterns_any_string(patterns: list[str], path: str) -> None:
    assert path_allowed(patterns, path) in (True, False)


@FUZZ
@given(
    segment=st.text(st.characters(exclude_characters="/"), min_size=1, max_size=20), rest=st.text(max_size=20)
)
def test_glob_star_never_crosses_a_segment(segment: str, rest: str) -> None:
    assert path_allowed(["live/*"], f"live/{segment}")
    if "/" in rest:
        assert not path_allowed(["live/*"], f"live/{segment}{rest}")


NETS = parse_networks(["10.0.0.0/8", "::1/128", "2001:db8::/32"])


@FUZZ
@given(ip=st.text(max_size=60) | st.ip_addresses().map(str))
def test_networks_any_string(ip: str) -> None:
    assert in_networks(ip, NETS) in (True, False)
    assert isinstance(client_key(ip), str)


@settings(max_examples=200, deadline=None)
@given(
    password=st.text(max_size=20),
    stored=st.text(max_size=80)
    | st.tuples(
        st.sampled_from(["2", "4", "16", "3", "0", "x", "99999999999999999999"]),
        st.sampled_from(["1", "8", "0", "100"]),
        st.sampled_from(["1", "0", "20"]),
        st.text(max_size=12),
        st.text(max_size=50),
    ).map(lambda p: "scrypt$" + "$".join(p)),
)
def test_verify_password_any_stored(password: str, stored: str) -> None:
    assert verify_password(password, stored) in (True, False)


CONTROL_CONFIG = AuthConfig(
    users=[{"user": "cam", "password": "campass", "actions": ["publish"], "paths": ["live/*"]}],
    jwt={"secret": SECRET},
    signed_urls={"secret": SIGN_SECRET},
    ip_deny=["203.0.113.0/24"],
    max_failures=1000,
)


@FUZZ
@given(
    action=actions,
    path=paths,
    remote=st.text(max_size=40) | st.sampled_from(["1.2.3.4:5", "[::1]:5", "[::ffff:203.0.113.9]:1"]),
    query=st.text(max_size=80),
    user=st.none() | st.text(max_size=20),
    password=st.none() | st.text(max_size=20) | st.text(max_size=20).map(lambda t: "Pw#" + t),
    token=st.none() | st.text(max_size=80) | st.text(max_size=80).map(lambda t: "Tk#" + t),
    methods=st.lists(st.sampled_from(["open", "users", "jwt", "signed_url", "http", "bogus"]), max_size=4),
)
def test_access_control_only_allows_or_denies(
    action: str,
    path: str,
    remote: str,
    query: str,
    user: str | None,
    password: str | None,
    token: str | None,
    methods: list[str],
) -> None:
    request = AuthRequest(path, action, "fuzz", remote, query, user, password, token=token)  # type: ignore[arg-type]

    async def check() -> None:
        control = AccessControl(CONTROL_CONFIG, clock=lambda: NOW)
        try:
            await control.check(request, methods)
        except AccessDenied as denied:
            assert denied.code in ("unauthorized", "forbidden")
            assert "Pw#" not in denied.reason and "Tk#" not in denied.reason  # secrets are never echoed
        finally:
            await control.close()

    run(check())
