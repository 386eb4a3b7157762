"""The pure parts of losing Redis: the retry pause, and URLs fit for a log line."""

import pytest

from pacs_ingest.shared.queue import redacted
from pacs_ingest.workers.redis_link import retry_delay


def test_the_retry_pause_doubles_from_half_a_second_up_to_five() -> None:
    pauses = [retry_delay(attempt, jitter=0.0) for attempt in range(1, 8)]
    assert pauses == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_jitter_only_shortens_the_pause() -> None:
    assert retry_delay(3, jitter=0.5) == 1.0
    assert retry_delay(9, jitter=0.25) == 3.75


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("unix://:s3cr3t@/srv/spool/redis/sock?db=0", "unix://:***@/srv/spool/redis/sock?db=0"),
        ("redis://ingest:s3cr3t@db.example:6379/0", "redis://ingest:***@db.example:6379/0"),
        ("rediss://:s3cr3t@db:6380/0?password=s3cr3t", "rediss://:***@db:6380/0?password=***"),
        ("unix:///srv/sock?db=0&password=s3cr3t", "unix:///srv/sock?db=0&password=***"),
        ("redis://db.example:6379/0", "redis://db.example:6379/0"),
        ("redis://ingest@db.example:6379/0", "redis://ingest@db.example:6379/0"),
    ],
)
def test_a_logged_url_shows_no_password(url: str, shown: str) -> None:
    assert redacted(url) == shown
