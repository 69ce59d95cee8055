"""Room tokens: every way around them refused with the right close code, and the grants they give."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from streamhive.config import JwtConfig, RoomsConfig
from streamhive.sfu.grants import (
    SOURCES,
    GrantError,
    RoomGrant,
    RoomTokens,
    valid_identity,
    valid_name,
    valid_room_name,
)

NOW = 1_700_000_000.0
SECRET = "a-room-token-secret-of-32-bytes-or-more"


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "alice", "exp": int(NOW) + 600, "room": "standup"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs(body: dict[str, Any], secret: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(body, secret, algorithm=alg)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], body: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token PyJWT would refuse to make: ``alg: none`` or HMAC keyed with a PEM."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(body).encode())}"
    if hmac_key is None:
        return signing_input + "."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tokens(auth: str = "jwt", **jwt_config: Any) -> RoomTokens:
    """Room tokens checked with ``SECRET`` (or the given public_key) at ``NOW``."""
    if "public_key" not in jwt_config:
        jwt_config["secret"] = SECRET
    return RoomTokens(RoomsConfig(auth=auth, jwt=JwtConfig(**jwt_config)), lambda: NOW)


def refused(rooms: RoomTokens, room: str, token: str | None, **hints: Any) -> GrantError:
    with pytest.raises(GrantError) as info:
        rooms.grant(room, token, **hints)
    return info.value


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def rsa_pem(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> Path:
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "rooms.pem"
    path.write_bytes(pem)
    return path


# -- refusals ---------------------------------------------------------------------------------


def test_a_jwt_room_needs_a_token() -> None:
    for token in (None, ""):
        error = refused(tokens(), "standup", token, identity="alice")
        assert (error.code, error.reason) == (4001, "a room token is required")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (claims(exp=int(NOW) - 6), "expired"),
        (claims(nbf=int(NOW) + 60), "not yet valid"),
        (claims(iat=int(NOW) + 60), "not yet valid"),
        (claims(exp=None), "malformed"),
        (claims(exp="tomorrow"), "malformed"),
    ],
)
def test_tokens_out_of_their_time_are_refused(body: dict[str, Any], reason: str) -> None:
    error = refused(tokens(leeway=5), "standup", hs(body))
    assert (error.code, error.reason) == (4001, f"invalid room token: {reason}")


def test_leeway_applies_to_room_tokens() -> None:
    assert tokens(leeway=5).grant("standup", hs(claims(exp=int(NOW) - 4))).identity == "alice"


def test_a_token_for_another_room_is_forbidden() -> None:
    error = refused(tokens(), "finance", hs(claims(room="standup")))
    assert (error.code, error.reason) == (4003, "the room token is for another room")


def test_a_forged_signature_is_refused() -> None:
    forged = hs(claims(), secret="another-secret-that-is-32-bytes-long!!")
    assert refused(tokens(), "standup", forged).reason == "invalid room token: bad signature"
    tampered = hs(claims(room="finance"))
    header, _, signature = tampered.split(".")
    other_body = hs(claims(room="*")).split(".")[1]
    error = refused(tokens(), "standup", f"{header}.{other_body}.{signature}")
    assert (error.code, error.reason) == (4001, "invalid room token: bad signature")


def test_alg_none_is_refused() -> None:
    for alg in ("none", "None", "NONE"):
        token = raw_token({"alg": alg, "typ": "JWT"}, claims(), None)
        error = refused(tokens(), "standup", token)
        assert (error.code, error.reason) == (4001, "invalid room token: algorithm not allowed")


def test_hs256_signed_with_the_public_key_is_refused(rsa_key: rsa.RSAPrivateKey, rsa_pem: Path) -> None:
    """Algorithm confusion: the attacker HMACs with the (public) PEM the server verifies with."""
    rooms = tokens(public_key=str(rsa_pem))
    pem = rsa_pem.read_bytes()
    for key in (pem, pem.strip()):
        error = refused(rooms, "standup", raw_token({"alg": "HS256", "typ": "JWT"}, claims(), key))
        assert (error.code, error.reason) == (4001, "invalid room token: algorithm not allowed")
    assert rooms.grant("standup", jwt.encode(claims(), rsa_key, algorithm="RS256")).identity == "alice"


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b.c",
        "é.é.é",
        "x" * 10_000,
        "eyJhbGciOiJIUzI1NiJ9..",
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    assert refused(tokens(), "standup", token).code == 4001


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (claims(room=None), "no room claim"),
        (claims(room=["standup"]), "no room claim"),
        (claims(sub=None), "invalid sub"),
        (claims(sub="al ice"), "invalid sub"),
        (claims(sub=".."), "invalid sub"),
        (claims(sub="a" * 65), "invalid sub"),
        (claims(name="Alice\u202e"), "invalid name"),
        (claims(name=""), "invalid name"),
        (claims(name=7), "invalid name"),
        (claims(grants=["publish"]), "grants is not an object"),
        (claims(grants={"publish": "yes"}), "grants.publish is not a boolean"),
        (claims(grants={"admin": 1}), "grants.admin is not a boolean"),
        (claims(grants={"sources": ["camera", "hologram"]}), "grants.sources lists an unknown source"),
        (claims(grants={"sources": "camera"}), "grants.sources lists an unknown source"),
    ],
)
def test_genuine_tokens_with_bad_claims_are_refused(body: dict[str, Any], why: str) -> None:
    error = refused(tokens(), "standup", hs(body))
    assert (error.code, error.reason) == (4001, f"invalid room token: {why}")


def test_audience_and_issuer_are_required_when_configured() -> None:
    rooms = tokens(audience="streamhive", issuer="idp")
    assert rooms.grant("standup", hs(claims(aud="streamhive", iss="idp"))).identity == "alice"
    for body, reason in (
        (claims(aud="other", iss="idp"), "wrong audience"),
        (claims(iss="idp"), "malformed"),
        (claims(aud="streamhive", iss="evil"), "wrong issuer"),
        (claims(aud="streamhive"), "malformed"),
    ):
        error = refused(rooms, "standup", hs(body))
        assert (error.code, error.reason) == (4001, f"invalid room token: {reason}")


def test_bad_room_names_are_refused_before_the_token() -> None:
    for room in ("", ".", "..", "a/b", "a b", "x" * 65, "caf\u00e9", "standup\n"):
        error = refused(tokens(), room, hs(claims(room="*")))
        assert (error.code, error.reason) == (4400, "invalid room name")


def test_room_tokens_configuration() -> None:
    with pytest.raises(ValueError, match="JWKS"):
        RoomsConfig(auth="jwt", jwt=JwtConfig(jwks_url="https://idp.example/jwks"))
    with pytest.raises(ValueError, match="needs rooms.jwt"):
        RoomsConfig(auth="jwt")


# -- grants -----------------------------------------------------------------------------------


def test_a_valid_hs256_token_gives_its_grants() -> None:
    body = claims(
        name="Alice Liddell",
        grants={"publish": True, "subscribe": False, "data": False, "sources": ["microphone"], "admin": True},
    )
    grant = tokens().grant("standup", hs(body), identity="mallory", name="Mallory")
    assert grant == RoomGrant(
        room="standup",
        identity="alice",
        name="Alice Liddell",
        publish=True,
        subscribe=False,
        data=False,
        sources=frozenset({"microphone"}),
        admin=True,
        expires=NOW + 600,
    )
    assert grant.allows_source("microphone")
    assert not grant.allows_source("camera")


def test_a_valid_rs256_token_gives_its_grants(rsa_key: rsa.RSAPrivateKey, rsa_pem: Path) -> None:
    token = jwt.encode(claims(grants={"publish": False}), rsa_key, algorithm="RS256")
    grant = tokens(public_key=str(rsa_pem)).grant("standup", token)
    assert (grant.identity, grant.name, grant.publish, grant.subscribe) == ("alice", "alice", False, True)
    assert not any(grant.allows_source(source) for source in SOURCES)
    # The RS256-keyed server refuses HS256 tokens outright, whatever the secret.
    assert refused(tokens(public_key=str(rsa_pem)), "standup", hs(claims())).code == 4001


def test_grant_defaults() -> None:
    grant = tokens().grant("standup", hs(claims()))
    assert (grant.publish, grant.subscribe, grant.data, grant.admin) == (True, True, True, False)
    assert grant.sources == frozenset(SOURCES)
    assert grant.name == "alice"
    assert grant.expires == NOW + 600
    assert all(grant.allows_source(source) for source in SOURCES)
    assert not grant.allows_source("hologram")
    empty = tokens().grant("standup", hs(claims(grants={"sources": []})))
    assert empty.publish and not empty.allows_source("camera")


@pytest.mark.parametrize(
    ("pattern", "room", "allowed"),
    [
        ("team-*", "team-red", True),
        ("team-*", "team-", True),
        ("team-*", "standup", False),
        ("*", "anything.at-all", True),
        ("**", "standup", True),
        ("stand?p", "standup", False),  # globs have * only, no ?
        ("~team-(red|blue)", "team-blue", True),
        ("~team-(red|blue)", "team-blue2", False),  # a regex must match the whole name
        ("standup", "standup2", False),
    ],
)
def test_glob_room_patterns(pattern: str, room: str, allowed: bool) -> None:
    token = hs(claims(room=pattern))
    if allowed:
        assert tokens().grant(room, token).room == room
    else:
        assert refused(tokens(), room, token).code == 4003


# -- open rooms -------------------------------------------------------------------------------


def test_open_room_without_a_token_admits_guests() -> None:
    rooms = RoomTokens(RoomsConfig(), lambda: NOW)
    guest = rooms.grant("lobby", None)
    assert re.fullmatch(r"guest-[0-9a-f]{6}", guest.identity)
    assert guest.name == guest.identity
    assert (guest.publish, guest.subscribe, guest.data, guest.admin) == (True, True, True, False)
    assert guest.sources == frozenset(SOURCES)
    assert guest.expires is None
    assert rooms.grant("lobby", "").identity.startswith("guest-")
    assert rooms.grant("lobby", None).identity != guest.identity
    named = rooms.grant("lobby", None, identity="bob@example.org", name="Bob 🎸")
    assert (named.identity, named.name) == ("bob@example.org", "Bob 🎸")
    assert rooms.grant("lobby", None, identity="bob").name == "bob"
    assert rooms.grant("lobby", None, name="Bob").identity.startswith("guest-")


@pytest.mark.parametrize(
    ("hints", "reason"),
    [
        ({"identity": "bob smith"}, "invalid identity"),
        ({"identity": ".."}, "invalid identity"),
        ({"identity": "b" * 65}, "invalid identity"),
        ({"identity": 42}, "invalid identity"),
        ({"name": "Bob\nAdmin"}, "invalid name"),
        ({"name": "B" * 129}, "invalid name"),
    ],
)
def test_open_room_refuses_bad_hints(hints: dict[str, Any], reason: str) -> None:
    error = refused(RoomTokens(RoomsConfig()), "lobby", None, **hints)
    assert (error.code, error.reason) == (4400, reason)


def test_open_room_with_a_token_applies_it() -> None:
    rooms = tokens(auth="open")
    grant = rooms.grant("standup", hs(claims(grants={"publish": False})), identity="mallory")
    assert (grant.identity, grant.publish, grant.expires) == ("alice", False, NOW + 600)
    # A bad token is refused, never downgraded to a guest.
    assert refused(rooms, "standup", hs(claims(exp=int(NOW) - 60))).code == 4001
    assert refused(rooms, "standup", "garbage").code == 4001
    assert refused(rooms, "finance", hs(claims())).code == 4003
    assert rooms.grant("standup", None, identity="bob").identity == "bob"


def test_open_room_without_keys_refuses_tokens() -> None:
    error = refused(RoomTokens(RoomsConfig()), "lobby", hs(claims(room="lobby")))
    assert error.code == 4001


def test_validators() -> None:
    assert valid_room_name("Team_1.standup-2") and valid_room_name("x" * 64)
    assert not valid_room_name(None)
    assert valid_identity("alice@example.org") and not valid_identity("alice/bob")
    assert valid_name("Ünïcødé name") and not valid_name("tab\there") and not valid_name(None)


# -- fuzz ---------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@given(token=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b64url(b) + "." + b64url(b)))
def test_any_token_string_is_a_grant_error(token: str) -> None:
    with pytest.raises(GrantError) as info:
        tokens(auth="open").grant("standup", token or "x")
    assert info.value.code == 4001


@given(
    grants=JSON | st.dictionaries(st.sampled_from(["publish", "data", "admin", "sources", "x"]), JSON),
    sub=JSON,
    name=JSON,
    room=JSON,
)
def test_any_genuine_claims_give_a_grant_or_a_grant_error(
    grants: Any, sub: Any, name: Any, room: Any
) -> None:
    try:
        grant = tokens().grant("standup", hs(claims(grants=grants, sub=sub, name=name, room=room)))
    except GrantError as exc:
        assert exc.code in (4001, 4003)
        assert len(exc.reason.encode()) <= 123
    else:
        assert valid_identity(grant.identity) and valid_name(grant.name)
        assert grant.sources <= frozenset(SOURCES)
