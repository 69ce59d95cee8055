"""Access control below the protocols: patterns, networks, passwords, JWT, signed URLs, users,
failure blocking and limits, each allowed and refused, and the attacks of issue 8 that live here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from streamhive.auth import AuthRequest, Unauthorized
from streamhive.auth.access import AccessControl, AccessDenied
from streamhive.auth.limits import FailureLimiter, LogOnce, RateLimiter
from streamhive.auth.networks import client_key, in_networks, parse_networks
from streamhive.auth.passwords import PasswordChecker, hash_password, verify_password
from streamhive.auth.patterns import path_allowed
from streamhive.auth.signed import check_signed, sign_query
from streamhive.auth.tokens import JwtVerifier, load_public_key
from streamhive.config import AuthConfig, JwtConfig, SignedUrlConfig

NOW = 1_700_000_000.0
SECRET = "an-hs256-secret-of-at-least-32-bytes!"
SIGN_SECRET = "signed-url-secret-0123456789"


class Clock:
    """A clock the test moves by hand: nothing here sleeps."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def request(
    action: str = "read",
    path: str = "live/cam1",
    remote: str = "192.0.2.10:40000",
    **kwargs: Any,
) -> AuthRequest:
    return AuthRequest(path, action, "test", remote, **kwargs)  # type: ignore[arg-type]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs_token(claims: dict[str, Any], secret: str | bytes = SECRET, alg: str = "HS256", **header: Any) -> str:
    return jwt.encode(claims, secret, algorithm=alg, headers=header or None)


def raw_token(
    header: dict[str, Any], claims: dict[str, Any], key: bytes | None, digest: str = "sha256"
) -> str:
    """A token built by hand, for the ones PyJWT refuses to make (alg none, HMAC with a PEM key)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = b"" if key is None else hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def grant(**extra: Any) -> dict[str, Any]:
    return {"exp": NOW + 60, "actions": ["read"], "paths": ["live/*"], **extra}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


# -- path patterns --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "allowed"),
    [
        ("live/*", "live/cam1", True),
        ("live/*", "live/a/b", False),
        ("live/*", "live", False),
        ("live/*", "live/", False),
        ("live/*", "live2/x", False),
        ("live/*", "xlive/cam1", False),
        ("live/*", "/live/cam1", False),
        ("live/*", "live//cam1", False),
        ("live/*", "live/cam1\n", True),  # one segment "cam1\n": a name, never a separator
        ("live/*", "live/cam1\n/x", False),
        ("*", "cam1", True),
        ("*", "live/cam1", False),
        ("*", "", False),
        ("**", "live/cam1", True),
        ("**", "a/b/c/d", True),
        ("**", "a//b", False),
        ("cams/**", "cams/a", True),
        ("cams/**", "cams/a/b/c", True),
        ("cams/**", "cams", False),
        ("cams/**", "cams2/a", False),
        ("**/raw", "raw", True),
        ("**/raw", "a/b/raw", True),
        ("**/raw", "a/b/raw2", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "ab", False),
        ("cam*", "cam", True),
        ("cam*", "cam12", True),
        ("cam*", "cam1/x", False),
        ("live/cam.1", "live/camX1", False),  # "." is literal in a glob
        ("live/[ab]", "live/a", False),  # so are brackets
        ("live/[ab]", "live/[ab]", True),
        ("~live/cam[0-9]+", "live/cam12", True),
        ("~live/", "live/cam1", False),  # fullmatch: a prefix regex is not a prefix rule
        ("~^live/", "live/cam1", False),
        ("~live/.*", "evil/live/x", False),
        ("~live/.*", "live/x/y", True),
        ("~live/[a-z]+", "live/abc\n", False),  # fullmatch has no "$ before a final newline" hole
        ("~(", "(", False),  # an invalid regex admits nothing
    ],
)
def test_path_patterns(pattern: str, path: str, allowed: bool) -> None:
    assert path_allowed([pattern], path) is allowed


def test_path_patterns_any_of_and_none() -> None:
    assert path_allowed(["vod/*", "live/*"], "live/x")
    assert not path_allowed([], "live/x")


# -- networks -------------------------------------------------------------------------------


def test_networks() -> None:
    nets = parse_networks(["10.0.0.0/8", "2001:db8::/32", "192.168.1.7"])
    assert in_networks("10.1.2.3", nets)
    assert in_networks("::ffff:10.1.2.3", nets)  # what a dual-stack socket reports
    assert in_networks("2001:db8::5", nets)
    assert in_networks("192.168.1.7", nets)
    assert not in_networks("192.168.1.8", nets)
    assert not in_networks("11.0.0.1", nets)
    for junk in ("", "not an ip", "10.0.0.1:80", "[::1]", "10.0.0.256", "1" * 10000):
        assert not in_networks(junk, nets)
    with pytest.raises(ValueError, match="not a network"):
        parse_networks(["10.0.0.0/33"])


def test_client_key_groups_ipv6_by_64() -> None:
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:10.0.0.1") == client_key("10.0.0.1") == "10.0.0.1"


# -- passwords ------------------------------------------------------------------------------


def test_password_hash_round_trip() -> None:
    stored = hash_password("s3cret")
    assert stored.startswith("scrypt$") and "s3cret" not in stored
    assert verify_password("s3cret", stored)
    assert not verify_password("s3cret ", stored)
    assert hash_password("s3cret") != stored  # salted


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "s3cret",
        "scrypt$",
        "bcrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,
        "scrypt$16384$8$1$!!!$" + "A" * 44,
        "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$short",
        "scrypt$16383$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,  # N not a power of two
        "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,  # would need 1 TiB
        "scrypt$16384$-8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,
        "scrypt$١٦٣٨٤$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,  # non-ASCII digits
    ],
)
def test_malformed_password_hash_verifies_nothing(stored: str) -> None:
    assert verify_password("anything", stored) is False


async def test_password_checker_remembers_successes_only() -> None:
    clock = Clock()
    checker = PasswordChecker(clock, remember=10)
    stored = hash_password("pw")
    assert await checker.check("pw", stored)
    assert not await checker.check("nope", stored)
    assert await checker.check("pw", stored)
    clock.now += 11
    assert await checker.check("pw", stored)


# -- JWT ------------------------------------------------------------------------------------


async def test_jwt_valid_and_each_refusal() -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET, leeway=5), Clock())
    assert await verifier.verify(hs_token(grant()), "read", "live/cam1") is None
    assert await verifier.verify(hs_token(grant(exp=NOW - 6)), "read", "live/cam1") == "expired"
    assert await verifier.verify(hs_token(grant(exp=NOW - 4)), "read", "live/cam1") is None  # leeway
    assert await verifier.verify(hs_token(grant(nbf=NOW + 30)), "read", "live/cam1") == "not yet valid"
    assert await verifier.verify(hs_token(grant(iat=NOW + 30)), "read", "live/cam1") == "not yet valid"
    assert await verifier.verify(hs_token(grant()), "publish", "live/cam1") == "wrong action"
    assert await verifier.verify(hs_token(grant()), "read", "vod/film") == "wrong path"
    assert await verifier.verify(hs_token(grant()), "read", "live/a/b") == "wrong path"
    no_paths = {"exp": NOW + 60, "actions": ["read", "publish"]}
    assert await verifier.verify(hs_token(no_paths), "publish", "any/path/at/all") is None
    no_actions = {"exp": NOW + 60}
    assert await verifier.verify(hs_token(no_actions), "read", "live/cam1") == "wrong action"
    no_exp = {"actions": ["read"]}
    assert await verifier.verify(hs_token(no_exp), "read", "live/cam1") == "malformed"
    forged = hs_token(grant(), secret="another-secret-that-is-32-bytes-long!")
    assert await verifier.verify(forged, "read", "live/cam1") == "bad signature"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "x",
        "a.b",
        "a.b.c",
        "....",
        "eyJhbGciOiJIUzI1NiJ9.e30",  # header and payload, no signature part
        "ünïcode.tökén.here",
        "x" * 100_000,
    ],
)
async def test_jwt_malformed(token: str) -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET), Clock())
    assert await verifier.verify(token, "read", "live/cam1") == "malformed"


@pytest.mark.parametrize(
    "claims",
    [
        grant(exp="tomorrow"),
        grant(exp=True),
        grant(exp=float("nan")),
        grant(exp=float("inf")),
        grant(nbf=float("nan")),
        grant(actions="read"),
        grant(actions=[1]),
        grant(paths="live/*"),
        grant(paths=[None]),
    ],
)
async def test_jwt_bad_claim_types(claims: dict[str, Any]) -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET), Clock())
    assert await verifier.verify(hs_token(claims), "read", "live/cam1") == "malformed"


async def test_jwt_alg_none_refused() -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET), Clock())
    for alg in ("none", "None", "NONE"):
        token = raw_token({"alg": alg, "typ": "JWT"}, grant(), None)
        assert await verifier.verify(token, "read", "live/cam1") == "algorithm not allowed"
    with pytest.raises(ValueError, match="none"):
        JwtConfig(secret=SECRET, algorithms=["none"])


async def test_jwt_algorithm_not_on_the_list() -> None:
    secret = SECRET * 2  # HS512 wants 64 bytes
    verifier = JwtVerifier(JwtConfig(secret=secret), Clock())
    token = hs_token(grant(), secret, alg="HS512")
    assert await verifier.verify(token, "read", "live/cam1") == "algorithm not allowed"
    allowing = JwtVerifier(JwtConfig(secret=secret, algorithms=["HS256", "HS512"]), Clock())
    assert await allowing.verify(token, "read", "live/cam1") is None


async def test_jwt_hs256_signed_with_the_public_key_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    """Algorithm confusion: the attacker HMACs with the (public) PEM the server verifies with."""
    pem = public_pem(rsa_key)
    verifier = JwtVerifier(JwtConfig(public_key=pem), Clock())
    for key in (pem.encode(), pem.strip().encode()):
        for alg, digest in (("HS256", "sha256"), ("HS512", "sha512")):
            token = raw_token({"alg": alg, "typ": "JWT"}, grant(), key, digest)
            assert await verifier.verify(token, "read", "live/cam1") == "algorithm not allowed"
    genuine = jwt.encode(grant(), rsa_key, algorithm="RS256")
    assert await verifier.verify(genuine, "read", "live/cam1") is None
    # And the mix that would make the confusion possible cannot even be configured.
    with pytest.raises(ValueError, match="does not fit"):
        JwtVerifier(JwtConfig(public_key=pem, algorithms=["RS256", "HS256"]), Clock())
    with pytest.raises(ValueError, match="does not fit"):
        JwtVerifier(JwtConfig(secret=SECRET, algorithms=["RS256"]), Clock())


async def test_jwt_public_key_file_and_es256(
    tmp_path: Any, ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    key_file = tmp_path / "jwt.pem"
    key_file.write_text(public_pem(ec_key))
    verifier = JwtVerifier(JwtConfig(public_key=str(key_file)), Clock())
    assert await verifier.verify(jwt.encode(grant(), ec_key, algorithm="ES256"), "read", "live/x") is None
    # An RS256 token cannot be checked with an EC key, however it is made.
    rs = jwt.encode(grant(), rsa_key, algorithm="RS256")
    assert await verifier.verify(rs, "read", "live/x") == "algorithm not allowed"
    with pytest.raises(ValueError, match="cannot read"):
        load_public_key(str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="not a PEM"):
        load_public_key("-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n")


async def test_jwt_audience_and_issuer() -> None:
    verifier = JwtVerifier(JwtConfig(secret=SECRET, audience="streamhive", issuer="idp"), Clock())
    good = grant(aud="streamhive", iss="idp")
    assert await verifier.verify(hs_token(good), "read", "live/x") is None
    assert (
        await verifier.verify(hs_token(grant(aud="other", iss="idp")), "read", "live/x") == "wrong audience"
    )
    assert await verifier.verify(hs_token(grant(aud="streamhive")), "read", "live/x") is not None
    assert (
        await verifier.verify(hs_token(grant(aud="streamhive", iss="x")), "read", "live/x") == "wrong issuer"
    )
    # Without a configured audience, a token that names one is still accepted.
    plain = JwtVerifier(JwtConfig(secret=SECRET), Clock())
    assert await plain.verify(hs_token(good), "read", "live/x") is None


class FakeJwks:
    def __init__(self, *documents: Any) -> None:
        self.documents = list(documents)
        self.calls = 0

    async def __call__(self, url: str) -> Any:
        assert url == "https://idp.example/jwks"
        self.calls += 1
        document = self.documents[min(self.calls, len(self.documents)) - 1]
        if isinstance(document, Exception):
            raise document
        return document


def jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    algorithm = (
        jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
    )
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid, **extra}


async def test_jwks_keys_by_kid_refresh_and_rate_limit(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    clock = Clock()
    fetch = FakeJwks(
        {"keys": [jwk(rsa_key, "r1")]},
        {"keys": [jwk(rsa_key, "r1"), jwk(ec_key, "e1")]},
    )
    verifier = JwtVerifier(JwtConfig(jwks_url="https://idp.example/jwks", jwks_refresh=300), clock, fetch)
    rs = jwt.encode(grant(), rsa_key, algorithm="RS256", headers={"kid": "r1"})
    es = jwt.encode(grant(), ec_key, algorithm="ES256", headers={"kid": "e1"})
    assert await verifier.verify(rs, "read", "live/x") is None
    assert fetch.calls == 1
    # e1 is unknown, but the last fetch was just now: no refetch for 30 s whatever the kid.
    assert await verifier.verify(es, "read", "live/x") == "unknown key"
    for kid in ("a", "b", "c"):
        random_kid = jwt.encode(grant(), rsa_key, algorithm="RS256", headers={"kid": kid})
        assert await verifier.verify(random_kid, "read", "live/x") == "unknown key"
    assert fetch.calls == 1
    clock.now += 31
    assert await verifier.verify(es, "read", "live/x") is None  # unknown kid: refetched
    assert fetch.calls == 2
    assert await verifier.verify(rs, "read", "live/x") is None
    assert fetch.calls == 2  # cached until jwks_refresh
    # A token signed with the EC key but labelled r1 (the RSA key) is refused.
    mislabeled = jwt.encode(grant(), ec_key, algorithm="ES256", headers={"kid": "r1"})
    assert await verifier.verify(mislabeled, "read", "live/x") == "algorithm not allowed"
    # Two keys: a token without kid is not guessed at.
    no_kid = jwt.encode(grant(), rsa_key, algorithm="RS256")
    assert await verifier.verify(no_kid, "read", "live/x") == "unknown key"


async def test_jwks_failure_keeps_last_keys_and_skips_symmetric(rsa_key: rsa.RSAPrivateKey) -> None:
    clock = Clock()
    oct_key = {"kty": "oct", "kid": "h1", "k": b64url(SECRET.encode())}
    fetch = FakeJwks({"keys": [jwk(rsa_key, "r1"), oct_key]}, OSError("down"), "not json at all")
    verifier = JwtVerifier(JwtConfig(jwks_url="https://idp.example/jwks", jwks_refresh=60), clock, fetch)
    rs = jwt.encode(grant(exp=NOW + 3600), rsa_key, algorithm="RS256", headers={"kid": "r1"})
    assert await verifier.verify(rs, "read", "live/x") is None
    hs = hs_token(grant(), SECRET, kid="h1")
    assert await verifier.verify(hs, "read", "live/x") == "algorithm not allowed"
    for _ in range(2):
        clock.now += 61
        assert await verifier.verify(rs, "read", "live/x") is None
    assert fetch.calls == 3


async def test_jwks_unreachable_at_first_refuses() -> None:
    fetch = FakeJwks(OSError("down"))
    verifier = JwtVerifier(JwtConfig(jwks_url="https://idp.example/jwks"), Clock(), fetch)
    token = raw_token({"alg": "RS256", "kid": "r1"}, grant(), b"x")
    assert await verifier.verify(token, "read", "live/x") == "unknown key"
    assert await verifier.verify(token, "read", "live/x") == "unknown key"
    assert fetch.calls == 1


# -- signed URLs ----------------------------------------------------------------------------


def signed_config(max_validity: float = 3600) -> SignedUrlConfig:
    return SignedUrlConfig(secret=SIGN_SECRET, max_validity=max_validity)


def test_signed_url_valid_and_each_refusal() -> None:
    config = signed_config()
    query = sign_query(SIGN_SECRET, "read", "live/cam1", int(NOW) + 600)
    assert query.startswith(f"expires={int(NOW) + 600}&sign=")
    assert check_signed(config, query, "read", "live/cam1", NOW) is None
    assert check_signed(config, f"token=abc&{query}&x=1", "read", "live/cam1", NOW) is None
    # The action and the path are signed: a watch link neither publishes nor opens another path.
    assert check_signed(config, query, "publish", "live/cam1", NOW) == "bad signature"
    assert check_signed(config, query, "read", "live/cam2", NOW) == "bad signature"
    assert check_signed(config, query, "read", "live/cam1/x", NOW) == "bad signature"
    # Replay after expiry.
    assert check_signed(config, query, "read", "live/cam1", NOW + 601) == "expired"
    assert check_signed(config, query, "read", "live/cam1", NOW + 600) is None
    far = sign_query(SIGN_SECRET, "read", "live/cam1", int(NOW) + 7200)
    assert check_signed(config, far, "read", "live/cam1", NOW) == "too far in the future"
    forged = sign_query("another-secret-0123456789", "read", "live/cam1", int(NOW) + 600)
    assert check_signed(config, forged, "read", "live/cam1", NOW) == "bad signature"
    moved = query.replace(f"expires={int(NOW) + 600}", f"expires={int(NOW) + 900}")
    assert check_signed(config, moved, "read", "live/cam1", NOW) == "bad signature"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "missing"),
        ("expires=1700000600", "missing"),
        ("sign=" + "A" * 43, "missing"),
        ("expires=soon&sign=" + "A" * 43, "malformed"),
        ("expires=-5&sign=" + "A" * 43, "malformed"),
        ("expires=1700000600&sign=short", "malformed"),
        ("expires=1700000600&sign=" + "é" * 43, "malformed"),
        ("expires=1700000600&sign=" + "A" * 43 + "=", "malformed"),
        ("expires=1700000600%0A&sign=" + "A" * 43, "malformed"),
        ("expires=1&expires=2&sign=" + "A" * 43, "malformed"),
        ("expires=1700000600&sign=a&sign=b", "malformed"),
        ("&".join(["x=1"] * 100) + "&expires=1&sign=" + "A" * 43, "malformed"),
        ("expires=99999999999999999999&sign=" + "A" * 43, "malformed"),
    ],
)
def test_signed_url_malformed(query: str, reason: str) -> None:
    assert check_signed(signed_config(), query, "read", "live/cam1", NOW) == reason


# -- the policy -----------------------------------------------------------------------------


def access(clock: Clock | None = None, **auth: Any) -> AccessControl:
    return AccessControl(AuthConfig(**auth), clock=clock or Clock())


async def denied(control: AccessControl, req: AuthRequest, methods: list[str]) -> AccessDenied:
    with pytest.raises(AccessDenied) as info:
        await control.check(req, methods)
    assert isinstance(info.value, Unauthorized)  # protocols that catch Unauthorized keep working
    return info.value


USERS = [
    {"user": "cam", "password": "campass", "actions": ["publish"], "paths": ["live/*"]},
    {"user": "viewer", "password": "viewpass", "actions": ["read"], "paths": ["**"], "ips": ["10.0.0.0/8"]},
]


async def test_open_allows_anyone() -> None:
    await access().check(request(), ["open"])


async def test_users_allowed_and_refused() -> None:
    control = access(users=USERS)
    await control.check(request("publish", user="cam", password="campass"), ["users"])
    await control.check(request(user="viewer", password="viewpass", remote="10.1.1.1:5"), ["users"])
    await control.check(request(user="viewer", password="viewpass", remote="[::ffff:10.1.1.1]:5"), ["users"])
    wrong = await denied(control, request("publish", user="cam", password="nope"), ["users"])
    assert wrong.code == "unauthorized" and "nope" not in str(wrong) and "campass" not in str(wrong)
    unknown = await denied(control, request(user="nobody", password="x"), ["users"])
    assert unknown.code == "unauthorized" and unknown.reason == wrong.reason  # no user enumeration
    missing = await denied(control, request("publish"), ["users"])
    assert missing.code == "unauthorized"
    # Right password, not allowed: forbidden, so the client is not asked to try again.
    assert (
        await denied(control, request("read", user="cam", password="campass"), ["users"])
    ).code == "forbidden"
    assert (
        await denied(control, request("publish", "live/a/b", user="cam", password="campass"), ["users"])
    ).code == ("forbidden")
    assert (await denied(control, request(user="viewer", password="viewpass"), ["users"])).code == "forbidden"


async def test_users_digest_verifier_and_hash() -> None:
    stored = hash_password("hashed-pw")
    control = access(
        users=[
            {"user": "digest", "password": "clear-pw", "actions": ["read"], "paths": ["**"]},
            {"user": "hashed", "password_hash": stored, "actions": ["read"], "paths": ["**"]},
        ]
    )
    # An RTSP Digest answer: the server only learns whether a candidate password fits.
    await control.check(request(user="digest", verifier=lambda pw: pw == "clear-pw"), ["users"])
    await denied(control, request(user="digest", verifier=lambda pw: False), ["users"])
    await control.check(request(user="hashed", password="hashed-pw"), ["users"])
    assert (await denied(control, request(user="hashed", password="wrong"), ["users"])).code == "unauthorized"
    # A hash cannot check a Digest answer; that user needs a clear password in the config.
    await denied(control, request(user="hashed", verifier=lambda pw: True), ["users"])


async def test_same_user_twice_any_entry_may_admit() -> None:
    control = access(
        users=[
            {"user": "ops", "password": "pw", "actions": ["read"], "paths": ["live/*"]},
            {"user": "ops", "password": "pw", "actions": ["publish"], "paths": ["ops/*"]},
        ]
    )
    await control.check(request("read", "live/x", user="ops", password="pw"), ["users"])
    await control.check(request("publish", "ops/x", user="ops", password="pw"), ["users"])
    assert (
        await denied(control, request("publish", "live/x", user="ops", password="pw"), ["users"])
    ).code == ("forbidden")


async def test_jwt_method_through_the_policy() -> None:
    control = access(jwt={"secret": SECRET})
    await control.check(request(token=hs_token(grant())), ["jwt"])
    assert (await denied(control, request(), ["jwt"])).code == "unauthorized"
    expired = await denied(control, request(token=hs_token(grant(exp=NOW - 600))), ["jwt"])
    assert expired.code == "unauthorized" and "expired" in expired.reason
    wrong_path = await denied(control, request(path="vod/x", token=hs_token(grant())), ["jwt"])
    assert wrong_path.code == "forbidden" and "wrong path" in wrong_path.reason
    wrong_action = await denied(control, request("publish", token=hs_token(grant())), ["jwt"])
    assert wrong_action.code == "forbidden" and "wrong action" in wrong_action.reason
    forged = hs_token(grant(), "another-secret-that-is-32-bytes-long!")
    refused = await denied(control, request(token=forged), ["jwt"])
    assert refused.code == "unauthorized" and forged not in str(refused)


async def test_signed_url_method_through_the_policy() -> None:
    clock = Clock()
    control = access(clock, signed_urls={"secret": SIGN_SECRET, "max_validity": 3600})
    query = sign_query(SIGN_SECRET, "publish", "live/cam1", int(NOW) + 60)
    await control.check(request("publish", query=query), ["signed_url"])
    assert (await denied(control, request("read", query=query), ["signed_url"])).code == "unauthorized"
    clock.now += 61
    replay = await denied(control, request("publish", query=query), ["signed_url"])
    assert replay.code == "unauthorized" and "expired" in replay.reason


async def test_any_method_suffices_and_reason_names_them() -> None:
    control = access(users=USERS, jwt={"secret": SECRET}, signed_urls={"secret": SIGN_SECRET})
    await control.check(request(token=hs_token(grant())), ["users", "jwt"])
    await control.check(request("publish", user="cam", password="campass"), ["jwt", "users"])
    refusal = await denied(
        control, request(user="cam", password="bad-guess-123"), ["users", "jwt", "signed_url"]
    )
    assert refusal.code == "unauthorized"
    assert "users:" in refusal.reason and "jwt:" in refusal.reason and "signed_url:" in refusal.reason
    assert "bad-guess-123" not in refusal.reason
    empty = await denied(control, request(), [])
    assert empty.code == "unauthorized"


async def test_ip_rules_come_first() -> None:
    control = access(ip_allow=["192.0.2.0/24", "2001:db8::/32"], ip_deny=["192.0.2.66/32"])
    await control.check(request(remote="192.0.2.10:1"), ["open"])
    await control.check(request(remote="[2001:db8::1]:1"), ["open"])
    await control.check(request(remote="[::ffff:192.0.2.10]:1"), ["open"])
    assert (await denied(control, request(remote="192.0.2.66:1"), ["open"])).code == "forbidden"
    assert (await denied(control, request(remote="[::ffff:192.0.2.66]:1"), ["open"])).code == "forbidden"
    assert (await denied(control, request(remote="198.51.100.1:1"), ["open"])).code == "forbidden"
    assert (await denied(control, request(remote="garbage"), ["open"])).code == "forbidden"


async def test_brute_force_blocks_then_unblocks() -> None:
    clock = Clock()
    control = access(clock, users=USERS, max_failures=3, block_seconds=60)
    right = request("publish", user="cam", password="campass")
    for guess in ("a", "b", "c"):
        assert (await denied(control, request("publish", user="cam", password=guess), ["users"])).code == (
            "unauthorized"
        )
    blocked = await denied(control, right, ["users"])
    assert blocked.code == "forbidden" and "too many" in blocked.reason
    assert (await denied(control, request(), ["open"])).code == "forbidden"
    # Another address is not affected; the blocked one is let in again after block_seconds.
    await control.check(request("publish", user="cam", password="campass", remote="192.0.2.11:1"), ["users"])
    clock.now += 59
    await denied(control, right, ["users"])
    clock.now += 2
    await control.check(right, ["users"])


async def test_failures_count_only_with_credentials_and_per_ipv6_64() -> None:
    control = access(users=USERS, max_failures=2)
    for _ in range(5):  # a player trying without credentials first is never blocked
        await denied(control, request("publish"), ["users"])
    await control.check(request("publish", user="cam", password="campass"), ["users"])
    # An IPv6 client rotating addresses within its /64 is one client.
    await denied(control, request("publish", user="cam", password="x", remote="[2001:db8::1]:1"), ["users"])
    await denied(control, request("publish", user="cam", password="x", remote="[2001:db8::2]:1"), ["users"])
    blocked = await denied(
        control, request("publish", user="cam", password="campass", remote="[2001:db8::3]:1"), ["users"]
    )
    assert blocked.code == "forbidden"


async def test_bad_network_in_config_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a network"):
        access(ip_deny=["10.0.0.0/40"])


# -- limits ---------------------------------------------------------------------------------


def test_failure_limiter_window_and_memory_bound() -> None:
    clock = Clock()
    limiter = FailureLimiter(3, block_seconds=10, clock=clock, window=60, max_tracked=100)
    limiter.failed("a")
    limiter.failed("a")
    clock.now += 61  # the window slides: old failures no longer count
    limiter.failed("a")
    assert not limiter.blocked("a")
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.blocked("a")
    for i in range(1000):
        limiter.failed(f"flood{i}")
    assert len(limiter._failures) <= 100 and len(limiter._blocked) <= 100


def test_rate_limiter_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(2, 4, clock, max_tracked=10)
    assert [limiter.allow("a") for _ in range(5)] == [True, True, True, True, False]
    assert limiter.allow("b")
    clock.now += 0.5
    assert limiter.allow("a") and not limiter.allow("a")
    clock.now += 100
    assert sum(limiter.allow("a") for _ in range(10)) == 4  # never more than the burst
    for i in range(100):
        limiter.allow(f"k{i}")
    assert len(limiter._buckets) <= 10
    assert all(RateLimiter(0, 0, clock).allow("x") for _ in range(100))


def test_log_once() -> None:
    clock = Clock()
    once = LogOnce(60, clock)
    assert once.should_log("1.2.3.4")
    assert not once.should_log("1.2.3.4")
    assert once.should_log("5.6.7.8")
    clock.now += 60
    assert once.should_log("1.2.3.4")


def test_scrypt_is_salted_sha_is_not_used() -> None:
    stored = hash_password("pw")
    assert hashlib.sha256(b"pw").hexdigest() not in stored


async def test_a_valid_token_does_not_buy_unlimited_password_guesses() -> None:
    """Wrong passwords count even when a valid token (for another action) turns the answer into 403."""
    control = access(users=USERS, jwt=JwtConfig(secret=SECRET), max_failures=3)
    viewer_token = hs_token(grant())  # valid, but only for reading
    for guess in ("a", "b", "c"):
        attempt = request("publish", user="cam", password=guess, token=viewer_token)
        assert (await denied(control, attempt, ["users", "jwt"])).code == "forbidden"
    blocked = await denied(control, request("publish", user="cam", password="campass"), ["users", "jwt"])
    assert "too many" in blocked.reason
