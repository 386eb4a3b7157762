"""The receiver's one `ssl.SSLContext`, built at start-up from the TLS options.

Key and trust stores are PKCS12 files (the reference's format; read with the `cryptography`
package, since Python's ssl module cannot) or PEM files (`--key-store-type PEM`: certificate chain
and private key in one file; `--trust-store-type PEM`: CA certificates). Cipher suites are given by
their JSSE/IANA names as in the reference and mapped to OpenSSL's (`cipher-suites.properties`).

Whatever this OpenSSL refuses fails at start-up, never silently: before the port opens, `build`
with `probe=True` hands each requested protocol version and cipher suite to OpenSSL in an
in-memory handshake against our own key. SSLv3 and SSLv2Hello cannot be had at all. Each suite
and version the user named must work; of the sets `--tls` and `--tls-aes` stand for, at least one
suite must, and the refused ones are named in a warning (a JDK that disables NULL and 3DES treats
those options the same way). TLS 1.3 suites cannot be chosen one by one in Python: with TLSv1.3
allowed, OpenSSL's default TLS 1.3 suites are all on.
"""

import contextlib
import os
import ssl
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)

from pacs_ingest.receiver import properties
from pacs_ingest.receiver.tls_options import TlsSettings
from pacs_ingest.shared import log
from pacs_ingest.shared.options import ConfigError

PKCS12 = "PKCS12"
PEM = "PEM"
_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_UNAVAILABLE = ("SSLv3", "SSLv2Hello")
_HANDSHAKE_ROUNDS = 8


@cache
def _cipher_names() -> dict[str, str]:
    data = (resources.files(__package__) / "cipher-suites.properties").read_bytes()
    return {entry.key: entry.value for entry in properties.read(data)}


def openssl_name(suite: str, option: str) -> str:
    """OpenSSL's name of a suite given by its JSSE/IANA name (SSL_ spelled TLS_) or its own."""
    names = _cipher_names()
    iana = "TLS_" + suite[4:] if suite.startswith("SSL_") else suite
    if iana in names:
        return names[iana]
    if suite in names.values():
        return suite
    raise ConfigError(f"{option}: unknown cipher suite {suite}")


def is_tls13_suite(name: str) -> bool:
    return name.startswith("TLS_")  # OpenSSL names TLS 1.3 suites as IANA does, others not


def _versions(settings: TlsSettings) -> list[ssl.TLSVersion]:
    for protocol in settings.protocols:
        if protocol in _UNAVAILABLE:
            raise ConfigError(
                f"{settings.protocols_option}: {protocol} is not available: Python's ssl module "
                f"({ssl.OPENSSL_VERSION}) cannot offer it"
            )
        if protocol not in _VERSIONS:
            raise ConfigError(
                f"--tls-protocol: unknown protocol {protocol!r} "
                "(one of TLSv1.3, TLSv1.2, TLSv1.1, TLSv1)"
            )
    return sorted({_VERSIONS[protocol] for protocol in settings.protocols})


def _location(location: str, option: str) -> Path:
    scheme, colon, _ = location.partition(":")
    if scheme == "resource" and colon:
        raise ConfigError(f"{option} {location}: no such resource (we ship no sample keys)")
    if scheme == "file" and colon:
        return Path(urllib.request.url2pathname(urllib.parse.urlparse(location).path))
    return Path(location)


def _read(location: str, option: str, store_type: str) -> bytes:
    if store_type.upper() not in (PKCS12, PEM):
        raise ConfigError(
            f"{option}-type {store_type}: not supported; use PKCS12 (keytool -importkeystore "
            "-deststoretype PKCS12 converts a JKS) or PEM"
        )
    try:
        data = _location(location, option).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{option} {location}: {exc.strerror or exc}") from None
    if store_type.upper() == PKCS12 and data.lstrip().startswith(b"-----BEGIN"):
        raise ConfigError(f"{option} {location} is a PEM file: add {option}-type PEM")
    return data


def _pkcs12(data: bytes, password: str, what: str) -> pkcs12.PKCS12KeyAndCertificates:
    try:
        return pkcs12.load_pkcs12(data, password.encode() if password else None)
    except ValueError as exc:
        raise ConfigError(f"{what}: cannot open PKCS12 (wrong password?): {exc}") from None


@contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path to `data` that exists only in this process's memory (the key never hits a disk)."""
    fd = os.memfd_create("pacs-ingest-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _load_key_store(context: ssl.SSLContext, settings: TlsSettings) -> None:
    if not settings.key_store:
        raise ConfigError(
            "TLS needs --key-store (our certificate and key): the reference's default "
            "resource:key.p12, dcm4che's sample key, is not shipped"
        )
    what = f"--key-store {settings.key_store}"
    data = _read(settings.key_store, "--key-store", settings.key_store_type)
    try:
        if settings.key_store_type.upper() == PEM:
            password = settings.key_pass or settings.key_store_pass
            path = _location(settings.key_store, "--key-store")
            context.load_cert_chain(path, password=password or None)
            return
        store = _pkcs12(data, settings.key_store_pass, what)
        if store.key is None or store.cert is None:
            raise ConfigError(f"{what}: holds no private key with its certificate")
        chain = store.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        for item in (store.cert, *store.additional_certs):
            chain += item.certificate.public_bytes(Encoding.PEM)
        with _memory_file(chain) as path:
            context.load_cert_chain(path)
    except ssl.SSLError as exc:
        raise ConfigError(f"{what}: {exc.reason or exc}") from None


def _load_trust_store(context: ssl.SSLContext, settings: TlsSettings) -> None:
    if not settings.trust_store:
        raise ConfigError(
            "TLS with client authentication needs --trust-store (or --tls-noauth): the "
            "reference's default resource:cacerts.p12, dcm4che's sample CA, is not shipped"
        )
    what = f"--trust-store {settings.trust_store}"
    data = _read(settings.trust_store, "--trust-store", settings.trust_store_type)
    if settings.trust_store_type.upper() == PKCS12:
        store = _pkcs12(data, settings.trust_store_pass, what)
        certificates = [store.cert] if store.cert else []
        certificates += store.additional_certs
        data = b"".join(item.certificate.public_bytes(Encoding.PEM) for item in certificates)
    try:
        context.load_verify_locations(cadata=data.decode("ascii", "replace"))
    except ssl.SSLError as exc:
        raise ConfigError(f"{what}: no CA certificate in it ({exc.reason or exc})") from None


def _server_context(
    settings: TlsSettings, versions: list[ssl.TLSVersion], suites: list[str], verify: bool
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1: the user asked
        context.minimum_version, context.maximum_version = versions[0], versions[-1]
        gaps = {
            ssl.TLSVersion.TLSv1: ssl.OP_NO_TLSv1,
            ssl.TLSVersion.TLSv1_1: ssl.OP_NO_TLSv1_1,
            ssl.TLSVersion.TLSv1_2: ssl.OP_NO_TLSv1_2,
        }
        for version, option in gaps.items():
            if versions[0] < version < versions[-1] and version not in versions:
                context.options |= option
    if suites:
        # If none of them is compiled in, OpenSSL refuses the list: the probes say which and why.
        with contextlib.suppress(ssl.SSLError):
            context.set_ciphers(":".join(suites))
    _load_key_store(context, settings)
    if verify:
        context.verify_mode = ssl.CERT_REQUIRED
        _load_trust_store(context, settings)
    return context


def _probe(server: ssl.SSLContext, version: ssl.TLSVersion, suite: str | None) -> str | None:
    """Handshake in memory with `server` at `version` (and `suite`): None, or why it failed."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client.minimum_version = client.maximum_version = version
    try:
        # The client accepts anything, so only the server's (this host's) policy can refuse.
        client.set_ciphers(f"{suite or 'ALL'}:@SECLEVEL=0")
    except ssl.SSLError:
        return "not compiled into this OpenSSL"
    buffers = [ssl.MemoryBIO() for _ in range(4)]
    ends = [
        client.wrap_bio(buffers[0], buffers[1], server_side=False),
        server.wrap_bio(buffers[2], buffers[3], server_side=True),
    ]
    done = [False, False]
    for _ in range(_HANDSHAKE_ROUNDS):
        for index, end in enumerate(ends):
            if not done[index]:
                try:
                    end.do_handshake()
                    done[index] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as exc:
                    return (exc.reason or str(exc)).lower().replace("_", " ")
        buffers[2].write(buffers[1].read())
        buffers[0].write(buffers[3].read())
        if all(done):
            return None
    return "handshake did not finish"


def _check(
    settings: TlsSettings, versions: list[ssl.TLSVersion], suites: list[str], given: dict[str, str]
) -> list[str]:
    """Probe every requested version, then every requested suite; raise for a refusal that must
    stop start-up; return the suites that work."""
    version_server = _server_context(settings, versions, [], verify=False)
    for version in versions:
        reason = _probe(version_server, version, None)
        if reason is not None:
            raise ConfigError(
                f"{settings.protocols_option}: {version.name.replace('_', '.')} is refused by "
                f"{ssl.OPENSSL_VERSION} on this host ({reason})"
            )
    legacy = [version for version in versions if version < ssl.TLSVersion.TLSv1_3]
    suite_server = _server_context(settings, versions, suites, verify=False)
    refused: dict[str, str] = {}
    for suite in suites if legacy else []:
        reasons = [_probe(suite_server, version, suite) for version in legacy]
        if None not in reasons:
            refused[suite] = cast(str, reasons[0])
    if refused and (settings.suites_named_one_by_one or len(refused) == len(suites)):
        suite, reason = next(iter(refused.items()))
        raise ConfigError(
            f"{settings.suites_option}: cipher suite {given[suite]} ({suite}) is refused by "
            f"{ssl.OPENSSL_VERSION} on this host ({reason})"
        )
    if refused:
        log.warning(
            "tls.suites_refused",
            option=settings.suites_option,
            refused=[given[suite] for suite in refused],
            by=ssl.OPENSSL_VERSION,
        )
    return [suite for suite in suites if suite not in refused]


def build(settings: TlsSettings, *, probe: bool) -> ssl.SSLContext | None:
    """The server context the options describe, or None for plain TCP.

    With `probe` (once, in the parent, before the port opens) check with OpenSSL that every
    requested protocol and suite can be had; ConfigError says which cannot, and why.
    """
    if not settings.enabled:
        if settings.ignored and probe:
            log.warning(
                "tls.options_ignored", options=list(settings.ignored), why="no cipher option"
            )
        return None
    versions = _versions(settings)
    given = {openssl_name(suite, settings.suites_option): suite for suite in settings.cipher_suites}
    named = list(given)
    suites = [name for name in named if not is_tls13_suite(name)]
    if named and not suites and versions[0] < ssl.TLSVersion.TLSv1_3:
        raise ConfigError(
            f"{settings.suites_option}: only TLS 1.3 suites named, but {settings.protocols_option}"
            " allows TLS 1.2 or earlier: add --tls13 or a TLS 1.2 suite"
        )
    if any(is_tls13_suite(name) for name in named) and versions[-1] < ssl.TLSVersion.TLSv1_3:
        raise ConfigError(f"{settings.suites_option}: a TLS 1.3 suite needs TLSv1.3 allowed")
    if probe:
        suites = _check(settings, versions, suites, given)
    return _server_context(settings, versions, suites, verify=settings.client_auth)
