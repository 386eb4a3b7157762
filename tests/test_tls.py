"""TLS as DCMTK and OpenSSL clients see it, with certificates made for the test: mutual
authentication with PKCS12 and PEM stores, clients refused, protocol versions restricted, and
start-up refusing what OpenSSL on this host cannot do."""

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from pacs_ingest.embedded_redis import free_port
from tests.certificates import PASSWORD, Pki, make_pki
from tests.receivers import Receiver, Receivers, dcmtk, run_pacs_ingest

CT_SMALL = get_testdata_file("CT_small.dcm")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def storescu(receiver: Receiver, pki: Pki, *tls: str) -> subprocess.CompletedProcess:
    return dcmtk(
        "storescu",
        *tls,
        "+cf",
        str(pki.ca),
        "-aec",
        "INGEST",
        "127.0.0.1",
        str(receiver.port),
        str(CT_SMALL),
    )


def stored(run: subprocess.CompletedProcess) -> bool:
    """Whether storescu -d got a C-STORE-RSP with status Success."""
    output = run.stdout + run.stderr
    return (
        run.returncode == 0 and re.search(r"DIMSE Status\s+: 0x0000: Success", output) is not None
    )


def as_client(pki: Pki) -> list[str]:
    return ["+tls", str(pki.client_key), str(pki.client_cert)]


@dataclass(frozen=True)
class Secured:
    receiver: Receiver
    profile: tuple[str, ...]  # the DCMTK security profile offering the receiver's suites


STORES = {
    # The reference's own kind of stores, with the suites of DCMTK's default BCP 195 profile.
    "PKCS12": (
        (),
        [
            "--tls-cipher",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "--tls-cipher",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "--key-store",
            "{server_p12}",
            "--key-store-pass",
            PASSWORD,
            "--trust-store",
            "{trust_p12}",
            "--trust-store-pass",
            PASSWORD,
        ],
    ),
    # PEM stores with --tls, whose AES suite DCMTK's (retired) AES profile offers.
    "PEM": (
        ("+pa",),
        [
            "--tls",
            "--key-store",
            "{server_pem}",
            "--key-store-type",
            "PEM",
            "--key-pass",
            PASSWORD,
            "--trust-store",
            "file://{trust_pem}",
            "--trust-store-type",
            "PEM",
        ],
    ),
}


@pytest.fixture(scope="module", params=list(STORES))
def secured(request: pytest.FixtureRequest, receivers: Receivers, pki: Pki) -> Secured:
    profile, options = STORES[request.param]
    paths = {name: str(value) for name, value in vars(pki).items()}
    return Secured(receivers.start(*(item.format(**paths) for item in options)), profile)


def test_a_client_with_a_certificate_from_the_trusted_ca_stores(secured: Secured, pki: Pki) -> None:
    run = storescu(secured.receiver, pki, *secured.profile, *as_client(pki))
    assert stored(run), run.stdout + run.stderr


def test_a_client_without_a_certificate_is_refused(secured: Secured, pki: Pki) -> None:
    run = storescu(secured.receiver, pki, *secured.profile, "+tla")
    assert run.returncode != 0
    assert "TLS error" in run.stdout + run.stderr
    assert "peer did not return a certificate" in secured.receiver.log()


def test_a_client_with_an_untrusted_certificate_is_refused(secured: Secured, pki: Pki) -> None:
    stranger = ["+tls", str(pki.stranger_key), str(pki.stranger_cert)]
    run = storescu(secured.receiver, pki, *secured.profile, *stranger)
    assert run.returncode != 0
    assert "certificate verify failed" in secured.receiver.log()


def test_tls_names_the_suites_openssl_refuses_at_start_up(secured: Secured) -> None:
    log = secured.receiver.log()
    if "--tls" in secured.receiver.command.args:
        assert '"tls.suites_refused"' in log
        assert "SSL_RSA_WITH_NULL_SHA" in log
    else:
        assert '"tls.suites_refused"' not in log


def s_client(receiver: Receiver, version: str) -> subprocess.CompletedProcess:
    """OpenSSL's client, limited to one protocol version (-tls1_2, -tls1_3)."""
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{receiver.port}", version, "-brief"],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    )


class TestProtocols:
    @pytest.mark.parametrize("protocol", [[], ["--tls12"]])
    def test_only_tls_1_2_by_default_or_with_tls12(
        self, receivers: Receivers, pki: Pki, protocol: list[str]
    ) -> None:
        receiver = receivers.start(
            "--tls-aes",
            *protocol,
            "--tls-noauth",
            "--key-store",
            str(pki.server_p12),
            "--key-store-pass",
            PASSWORD,
        )
        assert s_client(receiver, "-tls1_2").returncode == 0
        assert s_client(receiver, "-tls1_3").returncode != 0
        # --tls-noauth: DCMTK without a certificate is welcome.
        assert stored(storescu(receiver, pki, "+pa", "+tla"))

    def test_tls13_allows_tls_1_3_only(self, receivers: Receivers, pki: Pki) -> None:
        receiver = receivers.start(
            "--tls-aes",
            "--tls13",
            "--tls-noauth",
            "--tls-eia-https",
            "--tls-eia-ldaps",
            "--key-store",
            str(pki.server_p12),
            "--key-store-pass",
            PASSWORD,
        )
        assert s_client(receiver, "-tls1_3").returncode == 0
        assert s_client(receiver, "-tls1_2").returncode != 0
        run = storescu(receiver, pki, "+px", "+tla")
        assert stored(run)
        assert re.search(r"Protocol\s+: TLSv1.3", run.stdout + run.stderr)

    def test_tls_protocol_values_accumulate(self, receivers: Receivers, pki: Pki) -> None:
        receiver = receivers.start(
            "--tls-aes",
            "--tls-protocol",
            "TLSv1.2",
            "--tls-protocol",
            "TLSv1.3",
            "--tls-noauth",
            "--key-store",
            str(pki.server_p12),
            "--key-store-pass",
            PASSWORD,
        )
        assert s_client(receiver, "-tls1_3").returncode == 0
        assert s_client(receiver, "-tls1_2").returncode == 0


def test_tls_options_without_a_cipher_option_leave_the_port_plain(
    receivers: Receivers, pki: Pki
) -> None:
    receiver = receivers.start("--key-store", str(pki.server_p12), "--tls13")
    run = dcmtk("echoscu", "-aec", "INGEST", "127.0.0.1", str(receiver.port))
    assert run.returncode == 0, run.stderr
    assert '"tls.options_ignored"' in receiver.log()


def start_up(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    return run_pacs_ingest(
        "receive",
        "-b",
        f"INGEST:{free_port()}",
        "--spool-dir",
        str(tmp_path / "spool"),
        "--redis-url",
        "redis://127.0.0.1:1/0",
        *options,
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tls-null"], "cipher suite SSL_RSA_WITH_NULL_SHA (NULL-SHA) is refused by OpenSSL"),
        (["--tls-3des"], "SSL_RSA_WITH_3DES_EDE_CBC_SHA (DES-CBC3-SHA) is refused by OpenSSL"),
        (["--tls-aes", "--ssl3"], "--ssl3: SSLv3 is not available: Python's ssl module"),
        (["--tls-aes", "--ssl2Hello"], "--ssl2Hello: SSLv2Hello is not available"),
        (["--tls-aes", "--tls1"], "--tls1: TLSv1 is refused by OpenSSL"),
        (["--tls-aes", "--tls11"], "--tls11: TLSv1.1 is refused by OpenSSL"),
        (["--tls-cipher", "TLS_NOT_A_SUITE"], "--tls-cipher: unknown cipher suite TLS_NOT_A_SUITE"),
    ],
)
def test_what_openssl_cannot_do_stops_start_up(
    tmp_path: Path, pki: Pki, options: list[str], message: str
) -> None:
    stores = ["--key-store", str(pki.server_p12), "--key-store-pass", PASSWORD, "--tls-noauth"]
    run = start_up(tmp_path, *options, *stores)
    assert run.returncode == 2, run.stderr
    first, hint = run.stderr.splitlines()[-2:]
    assert first.startswith("pacs-ingest: ") and message in first
    assert hint == "Try `pacs-ingest receive --help' for more information."


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tls-aes"], "TLS needs --key-store"),
        (["--tls-aes", "--key-store", "{p12}"], "wrong password"),
        (
            ["--tls-aes", "--key-store", "{p12}", "--key-store-pass", PASSWORD],
            "needs --trust-store",
        ),
        (
            ["--tls-aes", "--key-store", "{pem}", "--tls-noauth"],
            "is a PEM file: add --key-store-type PEM",
        ),
        (["--tls-aes", "--key-store", "{p12}", "--key-store-type", "JKS"], "JKS: not supported"),
        (["--tls-aes", "--key-store", "resource:key.p12"], "we ship no sample keys"),
    ],
)
def test_an_unusable_key_or_trust_store_stops_start_up(
    tmp_path: Path, pki: Pki, options: list[str], message: str
) -> None:
    filled = [item.format(p12=pki.server_p12, pem=pki.server_pem) for item in options]
    run = start_up(tmp_path, *filled)
    assert run.returncode == 2
    assert message in run.stderr
