"""A small PKI for the TLS tests: a CA, a server and a client it signs, and a stranger's client.

Written as the reference's users have them (PKCS12 key and trust stores) and as PEM files.
"""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

PASSWORD = "changeit"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str, key: rsa.RSAPrivateKey, issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name = issuer[0].subject if issuer else _name(subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey, password: str | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, encryption
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Pki:
    ca: Path  # PEM CA certificate (for DCMTK's +cf)
    server_p12: Path  # PKCS12 key store: server key, its certificate, the CA
    trust_p12: Path  # PKCS12 trust store: the CA
    server_pem: Path  # PEM key store: encrypted server key and certificate chain
    trust_pem: Path  # PEM trust store
    client_key: Path
    client_cert: Path
    stranger_key: Path  # a client whose CA the receiver does not trust
    stranger_cert: Path


def make_pki(directory: Path) -> Pki:
    ca_key, stranger_ca_key = _key(), _key()
    ca = _issue("Test CA", ca_key, None)
    stranger_ca = _issue("Stranger CA", stranger_ca_key, None)
    server_key, client_key, stranger_key = _key(), _key(), _key()
    server = _issue("localhost", server_key, (ca, ca_key))
    client = _issue("STORESCU", client_key, (ca, ca_key))
    stranger = _issue("STRANGER", stranger_key, (stranger_ca, stranger_ca_key))
    encryption = serialization.BestAvailableEncryption(PASSWORD.encode())
    files = {
        "ca.pem": _pem_cert(ca),
        "server.p12": pkcs12.serialize_key_and_certificates(
            b"server", server_key, server, [ca], encryption
        ),
        "trust.p12": pkcs12.serialize_key_and_certificates(None, None, None, [ca], encryption),
        "server.pem": _pem_key(server_key, PASSWORD) + _pem_cert(server) + _pem_cert(ca),
        "trust.pem": _pem_cert(ca),
        "client.key": _pem_key(client_key),
        "client.pem": _pem_cert(client),
        "stranger.key": _pem_key(stranger_key),
        "stranger.pem": _pem_cert(stranger),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return Pki(
        *(
            directory / name
            for name in (
                "ca.pem",
                "server.p12",
                "trust.p12",
                "server.pem",
                "trust.pem",
                "client.key",
                "client.pem",
                "stranger.key",
                "stranger.pem",
            )
        )
    )
