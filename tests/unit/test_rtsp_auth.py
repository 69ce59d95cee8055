"""RTSP Basic and Digest authentication: RFC vectors, independent hashes, and client-server round trips."""

from __future__ import annotations

import base64
import hashlib

import pytest

from streamhive.protocols.rtsp.auth import (
    AuthResult,
    Challenge,
    Credentials,
    DigestAuthority,
    authorization_header,
    basic_challenge,
    parse_authorization,
    parse_www_authenticate,
)
from streamhive.protocols.rtsp.message import RtspError

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_700_000_000.0

RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
    'uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", '
    'response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_rfc2617_worked_example_client_side() -> None:
    [c] = parse_www_authenticate([RFC2617_CHALLENGE])
    assert (c.scheme, c.realm, c.qop, c.stale) == (
        "digest",
        "testrealm@host.com",
        ["auth", "auth-int"],
        False,
    )
    header = authorization_header(c, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", cnonce="0a4f113b")
    assert parse_authorization(header) == parse_authorization(RFC2617_AUTHORIZATION)
    assert 'response="6629fae49393a05397450978507c4ef1"' in header


def test_rfc2617_worked_example_server_side() -> None:
    creds = parse_authorization(RFC2617_AUTHORIZATION)
    assert (creds.scheme, creds.username, creds.qop, creds.nc, creds.cnonce) == (
        "digest",
        "Mufasa",
        "auth",
        "00000001",
        "0a4f113b",
    )
    assert creds.verify("Circle Of Life", "GET")
    assert not creds.verify("Circle of Life", "GET")
    assert not creds.verify("Circle Of Life", "POST")


def test_rfc2069_style_without_qop() -> None:
    [c] = parse_www_authenticate(
        ['Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"']
    )
    header = authorization_header(c, "Mufasa", "CircleOfLife", "GET", "/dir/index.html")
    assert 'response="1949323746fe6a43ef61f9606e7febea"' in header
    assert "qop" not in header and "cnonce" not in header and "nc=" not in header


def test_sha256_vectors() -> None:
    # curl's test 2061 (no qop) and RFC 7616 section 3.9.1 (qop=auth)
    [c] = parse_www_authenticate(['Digest realm="testrealm", nonce="1053604145", algorithm="SHA-256"'])
    header = authorization_header(c, "testuser", "testpass", "GET", "/2061")
    assert 'response="9dc55255f1a2537b838311674b621d45346b862a81631bb20e4ce356ef25062d"' in header
    assert "algorithm=SHA-256" in header
    [c] = parse_www_authenticate(
        [
            'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
            'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
        ]
    )
    cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    header = authorization_header(c, "Mufasa", "Circle of Life", "GET", "/dir/index.html", cnonce=cnonce)
    assert 'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"' in header
    assert parse_authorization(header).verify("Circle of Life", "GET")


def test_digest_computed_independently() -> None:
    realm, nonce, uri = "IP Camera(12345)", "a1b2c3", "rtsp://10.0.0.2:554/Streaming/Channels/101"
    ha1 = md5(f"admin:{realm}:s3cret")
    ha2 = md5(f"DESCRIBE:{uri}")
    plain = md5(f"{ha1}:{nonce}:{ha2}")
    with_qop = md5(f"{ha1}:{nonce}:00000002:deadbeef:auth:{ha2}")
    sess_ha1 = md5(f"{ha1}:{nonce}:deadbeef")
    sess = md5(f"{sess_ha1}:{nonce}:00000002:deadbeef:auth:{ha2}")

    [c] = parse_www_authenticate([f'Digest realm="{realm}", nonce="{nonce}"'])
    assert f'response="{plain}"' in authorization_header(c, "admin", "s3cret", "DESCRIBE", uri)
    [c] = parse_www_authenticate([f'Digest realm="{realm}", nonce="{nonce}", qop="auth"'])
    header = authorization_header(c, "admin", "s3cret", "DESCRIBE", uri, cnonce="deadbeef", nc=2)
    assert f'response="{with_qop}"' in header and "nc=00000002" in header
    [c] = parse_www_authenticate([f'Digest realm="{realm}", nonce="{nonce}", qop=auth, algorithm=MD5-sess'])
    header = authorization_header(c, "admin", "s3cret", "DESCRIBE", uri, cnonce="deadbeef", nc=2)
    assert f'response="{sess}"' in header and parse_authorization(header).verify("s3cret", "DESCRIBE")


def test_round_trip_client_header_to_server_verify() -> None:
    for qop in (False, True):
        authority = DigestAuthority("streamhive", SECRET, qop=qop)
        challenges = parse_www_authenticate([authority.challenge(NOW), basic_challenge("streamhive")])
        header = authorization_header(
            challenges, "alice", "wonder land", "SETUP", "rtsp://h/live/cam/trackID=0"
        )
        assert header.startswith("Digest ") and (("qop=auth" in header) == qop)
        creds = parse_authorization(header)
        assert authority.verify(creds, "wonder land", "SETUP", NOW + 10) is AuthResult.OK
        assert authority.verify(creds, "wrong", "SETUP", NOW + 10) is AuthResult.DENIED
        assert authority.verify(creds, "wonder land", "PLAY", NOW + 10) is AuthResult.DENIED
        assert authority.verify(creds, "wonder land", "SETUP", NOW + 301) is AuthResult.STALE
        assert authority.verify(creds, "wrong", "SETUP", NOW + 301) is AuthResult.DENIED


def test_sha256_authority() -> None:
    authority = DigestAuthority("r", SECRET, 60, algorithm="sha-256")
    challenge = authority.challenge(NOW)
    assert "algorithm=SHA-256" in challenge
    header = authorization_header(parse_www_authenticate([challenge]), "u", "p", "PLAY", "rtsp://h/s")
    assert authority.verify(parse_authorization(header), "p", "PLAY", NOW) is AuthResult.OK


def test_stale_challenge_and_forged_nonces() -> None:
    authority = DigestAuthority("streamhive", SECRET, nonce_ttl=30)
    stale = parse_www_authenticate([authority.challenge(NOW, stale=True)])[0]
    assert stale.stale
    nonce = authority.nonce(NOW)
    assert authority.nonce_age(nonce, NOW + 12) == 12
    assert authority.nonce_age(nonce, NOW - 60) is None  # from the future
    assert authority.nonce_age(nonce[:-1] + ("0" if nonce[-1] != "0" else "1"), NOW) is None
    assert authority.nonce_age(nonce + "00", NOW) is None
    assert DigestAuthority("streamhive", b"another secret 16 bytes").nonce_age(nonce, NOW) is None
    assert DigestAuthority("other realm", SECRET).nonce_age(nonce, NOW) is None

    def creds_for(nonce: str, realm: str = "streamhive") -> Credentials:
        ch = Challenge("digest", {"realm": realm, "nonce": nonce})
        return parse_authorization(authorization_header(ch, "u", "pw", "PLAY", "rtsp://h/s"))

    assert authority.verify(creds_for(nonce), "pw", "PLAY", NOW) is AuthResult.OK
    assert authority.verify(creds_for("0" * 48), "pw", "PLAY", NOW) is AuthResult.DENIED
    assert authority.verify(creds_for(nonce, "other"), "pw", "PLAY", NOW) is AuthResult.DENIED


def test_authority_refuses_weak_configuration() -> None:
    with pytest.raises(ValueError):
        DigestAuthority("r", b"short")
    with pytest.raises(ValueError):
        DigestAuthority("r", SECRET, algorithm="SHA-512")


def test_basic() -> None:
    assert basic_challenge('Cam "A"') == 'Basic realm="Cam \\"A\\""'
    header = authorization_header(
        parse_www_authenticate(['Basic realm="x"']), "user", "pa:ss wörd", "DESCRIBE", "*"
    )
    assert header == "Basic " + base64.b64encode("user:pa:ss wörd".encode()).decode()
    creds = parse_authorization(header)
    assert (creds.scheme, creds.username, creds.password) == ("basic", "user", "pa:ss wörd")
    assert creds.verify("pa:ss wörd", "DESCRIBE") and not creds.verify("pa:ss", "DESCRIBE")
    authority = DigestAuthority("x", SECRET)
    assert authority.verify(creds, "pa:ss wörd", "DESCRIBE", NOW) is AuthResult.OK
    assert authority.verify(creds, "nope", "DESCRIBE", NOW) is AuthResult.DENIED
    assert parse_authorization("basic dXNlcjpwYXNz").password == "pass"  # lowercase scheme, no padding issue
    assert parse_authorization("Basic dXNlcjpwYXM").password == "pas"  # padding left off


def test_www_authenticate_shapes_cameras_send() -> None:
    values = [
        'Digest realm="IP Camera(C1234)",nonce="4d8b0f0e4b5c6",stale="FALSE"',
        'Basic realm="IP Camera(C1234)"',
        'Digest realm=Hikvision Camera, nonce=abc, qop="auth,auth-int", Basic realm="x, y"',
        'Digest realm="a\\"b", nonce="n, with comma"',
    ]
    got = parse_www_authenticate(values)
    assert [c.scheme for c in got] == ["digest", "basic", "digest", "basic", "digest"]
    assert (got[0].realm, got[0].nonce, got[0].stale) == ("IP Camera(C1234)", "4d8b0f0e4b5c6", False)
    assert (got[2].realm, got[2].qop) == ("Hikvision Camera", ["auth", "auth-int"])
    assert got[3].realm == "x, y"
    assert (got[4].realm, got[4].nonce) == ('a"b', "n, with comma")


def test_client_prefers_digest_and_skips_what_it_cannot_answer() -> None:
    challenges = parse_www_authenticate(
        [
            'Basic realm="r"',
            'Digest realm="r", nonce="n1", algorithm=SHA-512-256',
            'Digest realm="r", nonce="n2", qop="auth-int"',
            'Digest realm="r", nonce="n3"',
        ]
    )
    assert 'nonce="n3"' in authorization_header(challenges, "u", "p", "OPTIONS", "rtsp://h/")
    assert authorization_header(challenges[:3], "u", "p", "OPTIONS", "rtsp://h/").startswith("Basic ")
    with pytest.raises(RtspError) as info:
        authorization_header(challenges[1:3] + [Challenge("negotiate")], "u", "p", "OPTIONS", "*")
    assert info.value.status == 401 and "negotiate" in str(info.value)


def test_opaque_and_algorithm_are_echoed() -> None:
    [c] = parse_www_authenticate(['Digest realm="r", nonce="n", opaque="op", algorithm=MD5'])
    header = authorization_header(c, 'we"ird', "p", "PLAY", "rtsp://h/s")
    creds = parse_authorization(header)
    assert (creds.opaque, creds.algorithm, creds.username) == ("op", "MD5", 'we"ird')
    assert creds.verify("p", "PLAY")


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("Basic !!!notbase64", 400),
        ("Basic " + base64.b64encode(b"nocolon").decode(), 400),
        ('Digest username="u", realm="r", nonce="n", uri="/"', 400),
        ('Digest username="u", realm="r", nonce="n", uri="/", response="x", qop=auth', 400),
        ("Bearer abc.def", 401),
        ("", 401),
    ],
)
def test_bad_authorization(value: str, status: int) -> None:
    with pytest.raises(RtspError) as info:
        parse_authorization(value)
    assert info.value.status == status


def test_unsupported_digest_variants_do_not_verify() -> None:
    base = 'Digest username="u", realm="r", nonce="n", uri="/", response="0"'
    assert not parse_authorization(base + ", algorithm=SHA-512-256").verify("p", "GET")
    assert not parse_authorization(base + ', qop=auth-int, nc=00000001, cnonce="c"').verify("p", "GET")
    assert not parse_authorization(base + ", algorithm=MD5-sess").verify("p", "GET")  # sess needs a cnonce
