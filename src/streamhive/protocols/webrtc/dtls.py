"""DTLS 1.2 for DTLS-SRTP (RFC 5764, RFC 8827), sans-IO over pyOpenSSL memory BIOs.

OpenSSL does the protocol; this module feeds it datagrams, cuts what it writes back into datagrams,
checks the peer's certificate against the SDP fingerprint, and exports the SRTP keys.

One thing is not sans-IO, and cannot be: OpenSSL times its retransmissions with its own clock.
`next_timeout()` turns OpenSSL's "seconds left" into an absolute time on the caller's clock, and
`handle_timer()` lets OpenSSL retransmit when its own timer has also run out (so a timer fired a
little early re-arms itself instead of retransmitting).

Costs measured on the development machine: a certificate (ECDSA P-256) with its SSL.Context
takes ~1.3 ms (16 ms for the first in a process, while OpenSSL initialises), an endpoint's
Connection ~0.1 ms, and a whole handshake ~0.85 ms of CPU on each side. The Context is made once
per certificate and shared by every endpoint.
"""

from __future__ import annotations

import contextlib
import datetime
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL, crypto

from streamhive.protocols.webrtc import WebRtcError
from streamhive.protocols.webrtc.srtp import PROFILES, PROFILES_BY_NAME, SrtpKeys

DTLS1_2_VERSION = 0xFEFD  # pyOpenSSL has no constant for it

# The largest datagram we send. Handshake messages are fragmented to fit it, and records are packed
# into datagrams up to it; 1200 bytes passes every path WebRTC is expected to work on.
MTU = 1200

# What a peer may send before its handshake completes. A real DTLS-SRTP handshake is about 1 KB
# from the client (a few KB with retransmissions); past this the peer is flooding, and OpenSSL
# would otherwise buffer out-of-order handshake fragments for it.
MAX_HANDSHAKE_BYTES = 64 * 1024

EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"  # RFC 5764 section 4.2

# hash names of RFC 8122's a=fingerprint, as OpenSSL's X509.digest spells them
FINGERPRINT_HASHES = {
    "sha-1": "sha1",
    "sha-224": "sha224",
    "sha-256": "sha256",
    "sha-384": "sha384",
    "sha-512": "sha512",
}

_RECORD_HEADER = 13  # type, version, epoch, sequence number, length


class DtlsError(WebRtcError):
    """A DTLS failure; `datagrams` holds the fatal alert to send the peer before dropping it."""

    def __init__(self, message: str, datagrams: list[bytes] | None = None) -> None:
        super().__init__(message)
        self.datagrams = datagrams or []


def parse_fingerprint(value: str) -> tuple[str, bytes]:
    """Split an SDP a=fingerprint value ("sha-256 AB:CD:...") into (OpenSSL hash name, digest)."""
    parts = value.split()
    if len(parts) != 2:
        raise WebRtcError(f"malformed DTLS fingerprint {value!r}: expected 'HASH XX:XX:...'")
    algorithm, digest = parts[0].lower(), parts[1]
    if algorithm not in FINGERPRINT_HASHES:
        raise WebRtcError(f"unsupported DTLS fingerprint hash {parts[0]!r}")
    try:
        raw = bytes.fromhex(digest.replace(":", ""))
    except ValueError:
        raise WebRtcError(f"malformed DTLS fingerprint digest {digest!r}") from None
    if not raw:
        raise WebRtcError(f"empty DTLS fingerprint digest in {value!r}")
    return FINGERPRINT_HASHES[algorithm], raw


class DtlsCertificate:
    """The server's self-signed ECDSA certificate and the SSL.Context every endpoint shares.

    WebRTC authenticates DTLS by the fingerprint in the SDP, not by a CA, so one throwaway
    certificate serves all peers; it is valid 30 days, which bounds how long a server may run
    before it must make a new one.
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert
        digest = cert.fingerprint(hashes.SHA256()).hex().upper()
        self.fingerprint = "sha-256 " + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
        self.context = self._make_context()

    @classmethod
    def generate(cls, days: int = 30) -> DtlsCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, secrets.token_hex(8))])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))  # tolerate a peer's clock behind ours
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def expires(self) -> datetime.datetime:
        return self.cert.not_valid_after_utc

    def _make_context(self) -> SSL.Context:
        ctx = SSL.Context(SSL.DTLS_METHOD)
        # DTLS 1.2 is what every browser speaks for WebRTC; pinning it keeps our behaviour from
        # changing with the OpenSSL build. Session tickets are useless: peers never resume.
        ctx.set_min_proto_version(DTLS1_2_VERSION)
        ctx.set_max_proto_version(DTLS1_2_VERSION)
        ctx.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_QUERY_MTU)
        # The peer must present a certificate (RFC 8827 section 6.5); each Connection replaces
        # this callback with its own fingerprint check.
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *_: True)
        ctx.use_certificate(self.cert)
        ctx.use_privatekey(self.key)
        ctx.set_tlsext_use_srtp(b":".join(p.name.encode() for p in PROFILES))
        return ctx


@dataclass(slots=True)
class _FingerprintCheck:
    """The verify callback of one Connection; it records a mismatch so the error can name it."""

    expected: tuple[str, bytes] | None
    mismatch: bool = False

    def __call__(self, _conn: SSL.Connection, cert: crypto.X509, _errno: int, depth: int, _ok: int) -> bool:
        # Only the leaf certificate is named by the fingerprint; the self-signed "errors" OpenSSL
        # reports for it are expected, as nothing here is CA-signed.
        if depth != 0 or self.expected is None:
            return True
        algorithm, digest = self.expected
        if bytes.fromhex(cert.digest(algorithm).decode().replace(":", "")) == digest:
            return True
        self.mismatch = True
        return False


def _datagrams(data: bytes, mtu: int = MTU) -> list[bytes]:
    """Pack the records OpenSSL wrote into datagrams of at most `mtu` bytes.

    A memory BIO is a byte stream, so a whole flight comes out as one run of records; cutting it
    at arbitrary offsets would split records across datagrams, which DTLS cannot reassemble.
    """
    out: list[bytes] = []
    start = pos = 0
    while pos + _RECORD_HEADER <= len(data):
        end = pos + _RECORD_HEADER + int.from_bytes(data[pos + 11 : pos + 13], "big")
        if end - start > mtu and pos > start:
            out.append(data[start:pos])
            start = pos
        pos = end
    if start < len(data):
        out.append(data[start:])
    return out


class DtlsEndpoint:
    """One peer's DTLS association: datagrams in, datagrams out, SRTP keys once connected.

    `remote_fingerprint` is the peer's a=fingerprint from its SDP; the handshake fails if the
    certificate it presents does not hash to it. None skips the check, which is only for tests:
    without it anyone on the path could take the association over.
    """

    def __init__(
        self,
        cert: DtlsCertificate,
        role: Literal["server", "client"],
        remote_fingerprint: str | None,
    ) -> None:
        if role not in ("server", "client"):
            raise WebRtcError(f"DTLS role must be 'server' or 'client', not {role!r}")
        self.role = role
        self._check = _FingerprintCheck(parse_fingerprint(remote_fingerprint) if remote_fingerprint else None)
        self._ssl = SSL.Connection(cert.context, None)
        self._ssl.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._check)
        self._ssl.set_ciphertext_mtu(MTU)
        if role == "server":
            self._ssl.set_accept_state()
        else:
            self._ssl.set_connect_state()
        self.connected = False
        self.closed_by_peer = False
        # Application data (SCTP for data channels) decrypted by the latest receive() call.
        self.app_data: list[bytes] = []
        self._started_at: float | None = None
        self._received = 0
        self._deadline: float | None = None
        self._failure: str | None = None
        self._keys: SrtpKeys | None = None

    def start(self, now: float) -> list[bytes]:
        """Begin the handshake; a client returns its ClientHello, a server waits for one."""
        if self._started_at is None:
            self._started_at = now
        if self.role == "server":
            return []
        return self._guard(self._handshake, now)

    def receive(self, datagram: bytes, now: float) -> list[bytes]:
        """Feed one datagram; return the datagrams to send back. Application data goes to app_data.

        Raises DtlsError when the handshake fails (its reason in the message, its alert in
        `.datagrams`), and on every call after that.
        """
        if self._started_at is None:
            self._started_at = now
        self.app_data = []
        if self._failure is not None:
            raise DtlsError(self._failure)
        if not datagram:
            return []  # a memory BIO refuses an empty write; UDP can carry one, DTLS cannot use it
        if not self.connected:
            self._received += len(datagram)
            if self._received > MAX_HANDSHAKE_BYTES:
                self._fail(f"DTLS handshake flood: over {MAX_HANDSHAKE_BYTES} bytes before it completed")
        self._ssl.bio_write(datagram)
        if not self.connected:
            return self._guard(self._handshake, now)
        return self._guard(self._read, now)

    def send(self, data: bytes, now: float) -> list[bytes]:
        """Encrypt application data (SCTP); the association must be connected."""
        if not self.connected:
            raise WebRtcError("DTLS is not connected yet: cannot send application data")
        return self._guard(lambda: self._ssl.send(data), now)

    def handle_timer(self, now: float) -> list[bytes]:
        """Retransmit the last flight if the timer ran out; call at or after next_timeout()."""
        if self._failure is not None or self._deadline is None or now < self._deadline:
            return []
        return self._guard(self._ssl.DTLSv1_handle_timeout, now)

    def next_timeout(self) -> float | None:
        """When handle_timer() should next be called (caller's clock), or None if no timer runs."""
        return self._deadline

    def handshake_expired(self, now: float, timeout: float = 30.0) -> bool:
        """True once the handshake has run longer than `timeout` seconds without completing."""
        return not self.connected and self._started_at is not None and now - self._started_at > timeout

    @property
    def srtp_keys(self) -> SrtpKeys:
        """The SRTP master keys from the exporter, ours first (RFC 5764 section 4.2)."""
        if self._keys is None:
            raise WebRtcError("DTLS is not connected yet: no SRTP keys")
        return self._keys

    def close(self) -> list[bytes]:
        """Send close_notify; the endpoint is unusable afterwards."""
        if self._failure is not None:
            return []
        with contextlib.suppress(SSL.Error):  # OpenSSL refuses a shutdown mid-handshake: nothing to send
            self._ssl.shutdown()
        self._failure = "DTLS association closed"
        return self._drain()

    def _handshake(self) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            return
        self._keys = self._export_keys()
        self.connected = True
        self._read()  # application data may have arrived in the same datagram as the Finished

    def _read(self) -> None:
        while True:
            try:
                data = self._ssl.recv(65536)
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:
                self.closed_by_peer = True
                return
            self.app_data.append(data)

    def _export_keys(self) -> SrtpKeys:
        name = self._ssl.get_selected_srtp_profile().decode()
        profile = PROFILES_BY_NAME.get(name)
        if profile is None:
            self._fail(f"DTLS handshake negotiated no SRTP profile we support ({name or 'none'})")
        size = profile.key_length + profile.salt_length
        material = self._ssl.export_keying_material(EXPORTER_LABEL, 2 * size)
        k, s = profile.key_length, profile.salt_length
        client = material[:k] + material[2 * k : 2 * k + s]
        server = material[k : 2 * k] + material[2 * k + s : 2 * k + 2 * s]
        if self.role == "server":
            return SrtpKeys(profile, local=server, remote=client)
        return SrtpKeys(profile, local=client, remote=server)

    def _guard(self, step: Callable[[], object], now: float) -> list[bytes]:
        """Run one OpenSSL step, turn its failures into DtlsError, and collect what it wrote."""
        try:
            step()
        except SSL.Error as exc:
            if self._check.mismatch:
                self._fail("DTLS peer certificate does not match the fingerprint in its SDP")
            stage = "DTLS" if self.connected else "DTLS handshake"
            self._fail(f"{stage} failed: {_reason(exc)}")
        timeout = self._ssl.DTLSv1_get_timeout()
        self._deadline = None if timeout is None else now + timeout
        return self._drain()

    def _fail(self, reason: str) -> NoReturn:
        self._failure = reason
        self._deadline = None
        raise DtlsError(reason, self._drain())

    def _drain(self) -> list[bytes]:
        chunks = []
        while True:
            try:
                chunks.append(self._ssl.bio_read(65536))
            except SSL.WantReadError:
                break
        return _datagrams(b"".join(chunks)) if chunks else []


def _reason(exc: SSL.Error) -> str:
    """OpenSSL's reason strings, without the library/function noise around them."""
    if exc.args and isinstance(exc.args[0], list):  # [(library, function, reason), ...]
        reasons = [str(entry[-1]) for entry in exc.args[0] if isinstance(entry, tuple) and entry]
    else:  # SysCallError: (errno, text)
        reasons = [arg for arg in exc.args if isinstance(arg, str)]
    return ", ".join(r for r in reasons if r) or type(exc).__name__
