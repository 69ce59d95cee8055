"""TLS for every listener (HTTPS/WSS, RTMPS, RTSPS) from one configuration.

A listener's own cert/key win; otherwise the top-level ``tls`` applies, which may ask for a
self-signed certificate made at startup, so development and tests need no openssl step.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from pathlib import Path

from .config import Config

_SELF_SIGNED: tuple[str, str] | None = None


def self_signed_certificate(
    folder: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
) -> tuple[Path, Path]:
    """Write a new self-signed certificate (EC P-256, 30 days) and key for ``hosts`` to ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "streamhive self-signed")])
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def server_context(config: Config, cert: str | None, key: str | None) -> ssl.SSLContext:
    """The TLS context of a listener whose own cert/key (possibly None) are given."""
    global _SELF_SIGNED
    if cert is None or key is None:
        tls = config.tls
        assert tls is not None, "config validation requires tls for listeners without cert/key"
        if tls.self_signed:
            if _SELF_SIGNED is None:
                folder = Path(tempfile.mkdtemp(prefix="streamhive-tls-"))
                made = self_signed_certificate(folder)
                _SELF_SIGNED = (str(made[0]), str(made[1]))
            cert, key = _SELF_SIGNED
        else:
            cert, key = tls.cert, tls.key
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context
