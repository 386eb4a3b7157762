"""A Redis nobody else can drive: the whole pipeline against a real redis-server that requires a
password, an ACL user, and TLS with client certificates; passwords never reach the logs."""

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import AuthenticationError, RedisError

from benchmarks.corpus import make_corpus
from pacs_ingest.embedded_redis import free_port
from tests.certificates import PASSWORD as KEY_PASSWORD
from tests.certificates import make_pki
from tests.conftest import Pipeline
from tests.helpers import all_filed, store_all, wait_until

DEFAULT_PASSWORD = "default-Secret-1"
INGEST_PASSWORD = "ingest-Secret-2"
# What deploy/redis.conf suggests for pacs-ingest's own user: everything but the dangerous
# commands (FLUSHALL, CONFIG, KEYS, DEBUG, ...), on every key and channel.
INGEST_ACL = ["ingest", "on", f">{INGEST_PASSWORD}", "~*", "&*", "+@all", "-@dangerous"]


@contextlib.contextmanager
def _redis_server(directory: Path, *args: str) -> Iterator[subprocess.Popen]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not on PATH (Debian: apt-get install redis-server)")
    directory.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [
            *(binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", str(directory), "--logfile", str(directory / "server.log"), *args),
        ],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield server
    finally:
        server.terminate()
        server.wait(10)


def _wait_for(client: Redis, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return
        except RedisError:
            assert server.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.05)


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    args = ("--port", str(port), "--requirepass", DEFAULT_PASSWORD, "--user", *INGEST_ACL)
    with _redis_server(tmp_path / "redis", *args) as server:
        _wait_for(Redis(port=port, password=DEFAULT_PASSWORD), server)
        yield port


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """redis-server on TLS only, requiring client certificates; (port, query for the URL)."""
    (tmp_path / "pki").mkdir()
    pki = make_pki((tmp_path / "pki").absolute())
    port = free_port()
    args = (
        *("--port", "0", "--tls-port", str(port)),
        *("--tls-cert-file", str(pki.server_pem), "--tls-key-file", str(pki.server_pem)),
        *("--tls-key-file-pass", KEY_PASSWORD, "--tls-ca-cert-file", str(pki.ca)),
        *("--tls-auth-clients", "yes", "--requirepass", DEFAULT_PASSWORD),
    )
    query = f"ssl_ca_certs={pki.ca}&ssl_certfile={pki.client_cert}&ssl_keyfile={pki.client_key}"
    with _redis_server(tmp_path / "redis", *args) as server:
        _wait_for(
            Redis.from_url(f"rediss://:{DEFAULT_PASSWORD}@127.0.0.1:{port}/0?{query}"), server
        )
        yield port, query


def _files_objects_through(tmp_path: Path, redis_url: str, secret: str) -> None:
    """`receive` and `work` on `redis_url` file what storescu sends; `secret` is in no log."""
    pipeline = Pipeline(tmp_path, redis_url, free_port())
    try:
        pipeline.receive("--receivers", "1")
        pipeline.work("--processes", "1")
        objects = make_corpus(tmp_path / "corpus", 5)
        store_all(objects, pipeline.port)
        wait_until(
            lambda: all_filed(pipeline.archive, pipeline.spool, len(objects)),
            60,
            "every object filed",
        )
    finally:
        pipeline.stop_all()
    for command in pipeline.commands:
        assert secret not in command.log(), command.log_path


def test_a_pipeline_files_through_redis_with_an_acl_user(
    tmp_path: Path, password_redis: int
) -> None:
    url = f"redis://ingest:{INGEST_PASSWORD}@127.0.0.1:{password_redis}/0"
    _files_objects_through(tmp_path, url, INGEST_PASSWORD)


def test_a_pipeline_files_through_redis_with_requirepass(
    tmp_path: Path, password_redis: int
) -> None:
    url = f"redis://:{DEFAULT_PASSWORD}@127.0.0.1:{password_redis}/0"
    _files_objects_through(tmp_path, url, DEFAULT_PASSWORD)


def test_a_wrong_password_is_refused_by_the_server(password_redis: int) -> None:
    with pytest.raises(AuthenticationError):
        Redis.from_url(f"redis://ingest:wrong@127.0.0.1:{password_redis}/0").ping()


def test_a_pipeline_files_through_redis_over_tls(
    tmp_path: Path, tls_redis: tuple[int, str]
) -> None:
    port, query = tls_redis
    url = f"rediss://:{DEFAULT_PASSWORD}@127.0.0.1:{port}/0?{query}"
    _files_objects_through(tmp_path, url, DEFAULT_PASSWORD)


def test_up_logs_its_redis_url_without_the_password(tmp_path: Path, password_redis: int) -> None:
    url = f"redis://ingest:{INGEST_PASSWORD}@127.0.0.1:{password_redis}/0"
    pipeline = Pipeline(tmp_path, url, free_port())
    try:
        up = pipeline.up("--receivers", "1", "--workers", "1")
        wait_until(lambda: '"event":"up"' in up.log(), 30, "up to log its start")
    finally:
        pipeline.stop_all()
    assert INGEST_PASSWORD not in up.log()
    assert f"redis://ingest:***@127.0.0.1:{password_redis}/0" in up.log()
