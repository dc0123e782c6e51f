"""Certificates for the TLS tests, made with ``cryptography``: a CA, a server certificate for 127.0.0.1,
a client certificate the CA signed, and a client certificate of another CA (a stranger)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Pki", "make_pki"]

Key = ec.EllipticCurvePrivateKey


@attrs.frozen
class Pki:
    """PEM file paths."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    stranger_cert: str
    stranger_key: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: Key, issuer: tuple[str, Key] | None, usage: x509.ObjectIdentifier | None = None
) -> x509.Certificate:
    issuer_name, issuer_key = issuer or (subject, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, name: str, cert: x509.Certificate, key: Key) -> tuple[str, str]:
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return str(cert_path), str(key_path)


def make_pki(directory: Path) -> Pki:
    keys = {
        name: ec.generate_private_key(ec.SECP256R1()) for name in ("ca", "other", "server", "client", "x")
    }
    ca = ("sockerless test CA", keys["ca"])
    ca_path, _ = _write(directory, "ca", _certificate(ca[0], keys["ca"], None), keys["ca"])
    other = ("someone else's CA", keys["other"])
    server = _certificate("127.0.0.1", keys["server"], ca, ExtendedKeyUsageOID.SERVER_AUTH)
    client = _certificate("ci-runner", keys["client"], ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    stranger = _certificate("intruder", keys["x"], other, ExtendedKeyUsageOID.CLIENT_AUTH)
    return Pki(
        ca_path,
        *_write(directory, "server", server, keys["server"]),
        *_write(directory, "client", client, keys["client"]),
        *_write(directory, "stranger", stranger, keys["x"]),
    )
