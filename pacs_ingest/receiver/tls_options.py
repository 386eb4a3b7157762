"""dcm4che's TLS options (spec §2.4) and the settings they make; `receiver/tls.py` builds the
SSLContext from those settings.

As in the reference, TLS is on only when a cipher option names at least one suite; the first
present of --tls, --tls-null, --tls-3des, --tls-aes wins, else every --tls-cipher. Protocols: the
first present of --tls13, --tls12, --tls11, --tls1, --ssl3, --ssl2Hello, else every
--tls-protocol, else TLSv1.2 only. Client certificates are required unless --tls-noauth.
"""

from dataclasses import dataclass
from typing import Any

from pacs_ingest.shared.options import Option, from_options

TLS = "TLS"

# Suites the reference's shorthand options stand for (JSSE names).
NULL_SHA = "SSL_RSA_WITH_NULL_SHA"
AES_128_SHA = "TLS_RSA_WITH_AES_128_CBC_SHA"
TRIPLE_DES_SHA = "SSL_RSA_WITH_3DES_EDE_CBC_SHA"
CIPHER_OPTIONS = (
    ("tls", (NULL_SHA, AES_128_SHA, TRIPLE_DES_SHA)),
    ("tls_null", (NULL_SHA,)),
    ("tls_3des", (TRIPLE_DES_SHA,)),
    ("tls_aes", (AES_128_SHA, TRIPLE_DES_SHA)),
)
PROTOCOL_OPTIONS = (
    ("tls13", ("TLSv1.3",)),
    ("tls12", ("TLSv1.2",)),
    ("tls11", ("TLSv1.1",)),
    ("tls1", ("TLSv1",)),
    ("ssl3", ("SSLv3",)),
    ("ssl2Hello", ("SSLv2Hello", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2")),
)
DEFAULT_PROTOCOLS = ("TLSv1.2",)
_NOT_SHIPPED = "; the reference's default, dcm4che's sample {}, is not shipped"


def _flag(flag: str, text: str) -> Option:
    return Option((flag,), text, TLS, kind="flag")


def _value(flag: str, text: str, metavar: str, default: Any = None, **extra: Any) -> Option:
    return Option((flag,), text, TLS, type=str, default=default, metavar=metavar, **extra)


ROWS = (
    _flag("--tls", "TLS with AES, or NULL or 3DES where OpenSSL still allows them"),
    _flag("--tls-null", f"TLS without encryption ({NULL_SHA})"),
    _flag("--tls-3des", f"TLS with 3DES ({TRIPLE_DES_SHA})"),
    _flag("--tls-aes", f"TLS with AES ({AES_128_SHA}), or 3DES where OpenSSL allows it"),
    _value(
        "--tls-cipher",
        "TLS with this cipher suite (JSSE/IANA or OpenSSL name)",
        "suite",
        accumulate=True,
    ),
    _value(
        "--tls-protocol",
        "allow this protocol: TLSv1.3, TLSv1.2, TLSv1.1 or TLSv1 (default: TLSv1.2 only)",
        "protocol",
        accumulate=True,
    ),
    _flag("--tls13", "TLSv1.3 only"),
    _flag("--tls12", "TLSv1.2 only"),
    _flag("--tls11", "TLSv1.1 only"),
    _flag("--tls1", "TLSv1 only"),
    _flag("--ssl3", "SSLv3 only (refused: OpenSSL no longer has it)"),
    _flag("--ssl2Hello", "SSLv2Hello, SSLv3, TLSv1, TLSv1.1, TLSv1.2 (refused: no SSLv2Hello)"),
    _flag("--tls-noauth", "do not require (or check) a client certificate"),
    _value(
        "--key-store",
        "our certificate and private key: PKCS12 file, or PEM with --key-store-type PEM"
        + _NOT_SHIPPED.format("key.p12"),
        "file",
    ),
    _value("--key-store-type", "PKCS12 or PEM", "type", default="PKCS12"),
    _value("--key-store-pass", "password of the key store", "password", default="secret"),
    _value(
        "--key-pass",
        "password of the private key (default: the key store's; PEM keys only)",
        "password",
    ),
    _value(
        "--trust-store",
        "CA certificates that sign accepted client certificates: PKCS12, or PEM with "
        "--trust-store-type PEM" + _NOT_SHIPPED.format("cacerts.p12"),
        "file",
    ),
    _value("--trust-store-type", "PKCS12 or PEM", "type", default="PKCS12"),
    _value("--trust-store-pass", "password of the trust store", "password", default="secret"),
    _flag(
        "--tls-eia-https", "HTTPS endpoint identification (outgoing connections only: no effect)"
    ),
    _flag(
        "--tls-eia-ldaps", "LDAPS endpoint identification (outgoing connections only: no effect)"
    ),
)


def _given(args: Any) -> tuple[str, ...]:
    """The TLS options given a value other than their default."""
    unset = (False, [], None)
    return tuple(row.name for row in ROWS if getattr(args, row.dest) not in (row.default, *unset))


@dataclass(frozen=True, slots=True)
class TlsSettings:
    cipher_suites: tuple[str, ...]  # as given; empty: plain TCP
    suites_option: str  # the option that named them, for messages
    protocols: tuple[str, ...]
    protocols_option: str
    client_auth: bool
    key_store: str | None = None
    key_store_type: str = "PKCS12"
    key_store_pass: str = "secret"
    key_pass: str | None = None
    trust_store: str | None = None
    trust_store_type: str = "PKCS12"
    trust_store_pass: str = "secret"
    ignored: tuple[str, ...] = ()  # TLS options given while TLS is off

    @property
    def enabled(self) -> bool:
        return bool(self.cipher_suites)

    @property
    def suites_named_one_by_one(self) -> bool:
        """Whether the user named each suite (else a shorthand named a set of them)."""
        return self.suites_option not in ("--tls", "--tls-aes")

    @classmethod
    def from_args(cls, args: Any) -> "TlsSettings":
        suites, suites_option = tuple(args.tls_cipher), "--tls-cipher"
        for dest, named in CIPHER_OPTIONS:
            if getattr(args, dest):
                suites, suites_option = named, "--" + dest.replace("_", "-")
                break
        protocols, protocols_option = tuple(args.tls_protocol), "--tls-protocol"
        for dest, named in PROTOCOL_OPTIONS:
            if getattr(args, dest):
                protocols, protocols_option = named, "--" + dest
                break
        if not protocols:
            protocols, protocols_option = DEFAULT_PROTOCOLS, "the default"
        return from_options(
            cls,
            args,
            cipher_suites=suites,
            suites_option=suites_option,
            protocols=protocols,
            protocols_option=protocols_option,
            client_auth=not args.tls_noauth,
            ignored=() if suites else _given(args),
        )
