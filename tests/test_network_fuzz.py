"""The CI slice of the network fuzzer: a few hundred seeded, mutated association and store
streams against two live receivers with a worker behind them (real sockets, the fixtures' own
Redis), then every post-condition of the long run (`benchmarks/fuzz_network.py`)."""

from tests.conftest import Pipeline
from tests.fuzz import live_campaign
from tests.helpers import wait_until

TIMEOUTS = ("--request-timeout", "1000", "--idle-timeout", "1000", "--soclose-delay", "50")


def test_mutated_streams_crash_nothing_hang_nothing_and_lose_nothing(pipeline: Pipeline) -> None:
    receive = pipeline.receive("--receivers", "2", *TIMEOUTS)
    work = pipeline.work("--processes", "1")
    wait_until(lambda: receive.log().count('"receiver.started"') == 2, 30, "two receivers")
    report = live_campaign.run(
        port=pipeline.port,
        spool=pipeline.spool,
        archive=pipeline.archive,
        receive_log=receive.log_path,
        logs=[receive.log_path, work.log_path],
        cases=300,
        seed=9,
        concurrency=24,
        close_within=10.0,
        floods=1,
    )
    print("\n".join(report.lines()))
    assert report.acknowledged > 50, report.lines()  # the clean cases got through
    assert not report.problems, report.lines()
    peak_mb = max(peak for _, peak, _ in report.rss_kb.values()) / 1024
    assert peak_mb < 200, report.lines()
