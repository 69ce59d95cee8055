"""ICE-lite: browser-style connectivity checks answered, authenticated, nominated and timed out."""

from __future__ import annotations

import string

from aioice import stun

from streamhive.protocols.webrtc.ice import MAX_ADDRESSES, IceLite, new_credentials, stun_username

UFRAG, PWD = "ourufrag", "ourpasswordourpassword12"
REMOTE = "theirufrag"
A = ("192.0.2.10", 50000)
B = ("198.51.100.7", 61000)

# RFC 5769 section 2.1: a sample Binding request, username "evtj:h6vY", signed with this password.
RFC5769_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
    "002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70c"
    "bfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf"
)
RFC5769_PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt"


def check(
    username: str = f"{UFRAG}:{REMOTE}",
    pwd: str | None = PWD,
    use_candidate: bool = False,
    fingerprint: bool = True,
    controlled: bool = False,
) -> bytes:
    """A Binding request built the way Chrome builds its connectivity checks."""
    message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    message.attributes["USERNAME"] = username
    message.attributes["ICE-CONTROLLED" if controlled else "ICE-CONTROLLING"] = 0x1122334455667788
    if use_candidate:
        message.attributes["USE-CANDIDATE"] = None
    message.attributes["PRIORITY"] = 1853824767
    if pwd is None:
        if fingerprint:
            message.add_fingerprint()
        return bytes(message)
    message.add_message_integrity(pwd.encode())  # and FINGERPRINT after it
    data = bytes(message)
    if fingerprint:
        return data
    body = data[20:-8]  # drop the trailing FINGERPRINT attribute and fix the length
    return data[:2] + len(body).to_bytes(2, "big") + data[4:20] + body


def agent() -> IceLite:
    return IceLite(UFRAG, PWD, REMOTE)


def test_check_is_answered_with_a_signed_success() -> None:
    ice = agent()
    request = check()
    result = ice.handle(request, A, 1.0)
    assert result.valid and result.selected and result.changed
    response = stun.parse_message(result.response)  # also verifies FINGERPRINT
    assert response.message_method == stun.Method.BINDING
    assert response.message_class == stun.Class.RESPONSE
    assert response.transaction_id == stun.parse_message(request).transaction_id
    assert response.attributes["XOR-MAPPED-ADDRESS"] == A
    assert "FINGERPRINT" in response.attributes
    assert response.check_message_integrity(PWD.encode())
    assert not response.check_message_integrity(b"someone else's password")


def test_ipv6_address_with_scope_is_mapped() -> None:
    result = agent().handle(check(), ("fe80::1%eth0", 5000, 0, 2), 0.0)
    assert stun.parse_message(result.response).attributes["XOR-MAPPED-ADDRESS"] == ("fe80::1", 5000)


def test_wrong_password_and_unknown_username_are_dropped() -> None:
    ice = agent()
    assert ice.handle(check(pwd="not-our-password-at-all"), A, 0.0).response is None
    assert ice.handle(check(username=f"otherufr:{REMOTE}"), A, 0.0).response is None
    assert ice.handle(check(username="nocolon"), A, 0.0).response is None
    assert ice.rejected["bad integrity"] == 1
    assert ice.rejected["unknown username"] == 2
    assert ice.selected is None and not ice.is_valid(A)


def test_bad_fingerprint_and_junk_are_dropped() -> None:
    ice = agent()
    request = bytearray(check())
    request[-1] ^= 1
    assert ice.handle(bytes(request), A, 0.0).response is None
    assert ice.handle(b"\x16\xfe\xfd" + bytes(40), A, 0.0).response is None
    assert ice.handle(b"", A, 0.0).response is None
    assert ice.rejected == {"malformed": 1, "not STUN": 2}


def test_request_without_integrity_or_fingerprint_gets_400() -> None:
    ice = agent()
    for request in (check(pwd=None), check(fingerprint=False)):
        response = stun.parse_message(ice.handle(request, A, 0.0).response)
        assert response.message_class == stun.Class.ERROR
        assert response.error_code == 400
        assert "MESSAGE-INTEGRITY" not in response.attributes
    assert not ice.is_valid(A)


def test_stale_remote_ufrag_gets_401() -> None:
    ice = agent()
    response = stun.parse_message(ice.handle(check(username=f"{UFRAG}:oldufrag"), A, 0.0).response)
    assert response.error_code == 401
    assert ice.selected is None
    # with no remote ufrag known (not in the offer yet), any remote part is accepted
    assert IceLite(UFRAG, PWD).handle(check(username=f"{UFRAG}:oldufrag"), A, 0.0).valid


def test_controlled_peer_gets_signed_487() -> None:
    ice = agent()
    response = stun.parse_message(ice.handle(check(controlled=True), A, 0.0).response)
    assert response.error_code == 487
    assert response.check_message_integrity(PWD.encode())
    assert not ice.is_valid(A)


def test_rfc5769_sample_request_authenticates() -> None:
    """An independent encoder's request: it verifies, and as it claims ICE-CONTROLLED it gets 487."""
    ice = IceLite("evtj", RFC5769_PASSWORD, "h6vY")
    response = stun.parse_message(ice.handle(RFC5769_REQUEST, A, 0.0).response)
    assert response.transaction_id == bytes.fromhex("b7e7a701bc34d686fa87dfae")
    assert response.error_code == 487
    assert response.check_message_integrity(RFC5769_PASSWORD.encode())
    assert IceLite("evtj", "wrong").handle(RFC5769_REQUEST, A, 0.0).response is None
    assert stun_username(RFC5769_REQUEST) == "evtj"


def test_indications_and_responses_are_not_answered() -> None:
    ice = agent()
    indication = stun.Message(stun.Method.BINDING, stun.Class.INDICATION)
    indication.add_fingerprint()
    assert ice.handle(bytes(indication), A, 0.0).response is None
    assert not ice.rejected
    response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, attributes={"XOR-MAPPED-ADDRESS": A})
    response.add_message_integrity(PWD.encode())
    assert ice.handle(bytes(response), A, 0.0).response is None
    assert ice.rejected["not a request"] == 1


def test_first_valid_address_is_selected_until_a_nomination() -> None:
    ice = agent()
    assert ice.handle(check(), A, 0.0).selected
    assert ice.selected == A and not ice.nominated
    other = ice.handle(check(), B, 0.1)
    assert other.valid and not other.selected and not other.changed
    nominated = ice.handle(check(use_candidate=True), B, 0.2)
    assert nominated.selected and nominated.changed
    assert ice.selected == B and ice.nominated
    assert ice.valid_addresses == {A, B}
    # a plain check keeps the nominated pair; a later nomination elsewhere moves it
    assert not ice.handle(check(), A, 0.3).selected
    assert ice.selected == B
    again = ice.handle(check(use_candidate=True), B, 0.4)
    assert again.selected and not again.changed
    moved = ice.handle(check(use_candidate=True), A, 0.5)
    assert moved.selected and moved.changed and ice.selected == A


def test_consent_expires_without_checks_on_the_selected_address() -> None:
    ice = agent()
    assert not ice.consent_expired(1000.0)  # nothing selected yet: no consent to lose
    ice.handle(check(use_candidate=True), A, 10.0)
    assert ice.last_check(A) == 10.0 and ice.last_check(B) is None
    assert not ice.consent_expired(39.0)
    assert ice.consent_expired(41.0)
    ice.handle(check(), A, 35.0)  # the browser's consent check every few seconds
    assert not ice.consent_expired(41.0)
    ice.handle(check(), B, 60.0)  # checks on another address do not refresh the selected one
    assert ice.consent_expired(70.0)
    assert not ice.consent_expired(70.0, timeout=40.0)


def test_valid_addresses_are_bounded_and_keep_the_selection() -> None:
    ice = agent()
    ice.handle(check(use_candidate=True), A, 0.0)
    for port in range(1, MAX_ADDRESSES + 10):
        ice.handle(check(), ("203.0.113.1", port), float(port))
    assert len(ice.valid_addresses) == MAX_ADDRESSES
    assert ice.selected == A and ice.is_valid(A)
    assert not ice.is_valid(("203.0.113.1", 1))  # the stalest went first


def test_stun_username_reads_the_local_ufrag_cheaply() -> None:
    assert stun_username(check()) == UFRAG
    assert stun_username(check(pwd="wrong-password-is-fine-here")) == UFRAG  # no validation here
    assert stun_username(check(username="nocolon")) is None
    assert stun_username(check(username=":x")) is None
    assert stun_username(b"\x16\xfe\xfd" + bytes(60)) is None
    assert stun_username(b"") is None
    response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, attributes={"USERNAME": "a:b"})
    assert stun_username(bytes(response)) is None
    assert stun_username(bytes(stun.Message(stun.Method.BINDING, stun.Class.REQUEST))) is None


def test_new_credentials_are_random_ice_chars() -> None:
    ufrag, pwd = new_credentials()
    assert len(ufrag) == 8 and len(pwd) == 24
    assert set(ufrag + pwd) <= set(string.ascii_letters + string.digits)
    assert new_credentials() != (ufrag, pwd)
