"""HTTPS for an edge bound beyond loopback: browsers give pages the microphone only on a secure
origin (https, or http on localhost)."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.edge.settings import EdgeSettings

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def needs_tls(settings: EdgeSettings) -> bool:
    return settings.tls_cert is not None or settings.host not in LOOPBACK_HOSTS


def self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A self-signed certificate for this host, made once and kept in ``directory``."""
    cert_path, key_path = directory / "edge-cert.pem", directory / "edge-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(socket.gethostname())]
    for address in {host, "127.0.0.1"}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            names.append(x509.DNSName(address))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Parley edge (self-signed)")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    log.warning("made a self-signed certificate; browsers will ask to trust it", extra={"cert": str(cert_path)})
    return cert_path, key_path


def ssl_context(settings: EdgeSettings) -> ssl.SSLContext | None:
    """The server's TLS context, or None to serve plain HTTP on loopback."""
    if not needs_tls(settings):
        return None
    if settings.tls_cert is not None and settings.tls_key is not None:
        cert, key = settings.tls_cert, settings.tls_key
    elif settings.tls_cert is not None or settings.tls_key is not None:
        raise SystemExit("error: --tls-cert and --tls-key go together")
    else:
        cert, key = self_signed(settings.tls_self_signed_dir, settings.host)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
