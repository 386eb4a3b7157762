"""Redis key names are stored state: these are the strings running systems hold data under."""

import re

from pacs_ingest.shared import keys
from pacs_ingest.shared.heartbeat import Beat
from tests.helpers import ROOT


def test_every_key_keeps_the_name_running_systems_use() -> None:
    assert [
        keys.SPOOLS_KEY,
        keys.EPOCH_KEY,
        keys.HEARTBEATS_KEY,
        Beat(role="worker", host="h", pid=7, started_at=0.0).key,
        keys.worker_lease_key("w"),
        keys.sweep_pending_key("/s"),
        keys.sweep_lock_key("/s"),
        keys.counts_key("/s"),
        keys.filed_key("/s", 5),
        keys.attempts_key("/s"),
        keys.hold_key("/s"),
        keys.hold_delay_key("/s"),
        keys.names_key("L"),
        keys.drain_key("L"),
        keys.drain_helper_key("L"),
        keys.verified_key("L"),
        keys.claimers_key("L"),
        keys.claims_key("L", "w"),
    ] == [
        "pacs-ingest:spools",
        "pacs-ingest:epoch",
        "pacs-ingest:heartbeats",
        "pacs-ingest:heartbeat:worker:h:7",
        "pacs-ingest:worker:w",
        "pacs-ingest:sweep-pending:/s",
        "pacs-ingest:sweep-lock:/s",
        "pacs-ingest:counts:/s",
        "pacs-ingest:filed:/s:5",
        "pacs-ingest:attempts:/s",
        "pacs-ingest:hold:/s",
        "pacs-ingest:hold-delay:/s",
        "pacs-ingest:lane:L:names",
        "pacs-ingest:lane:L:drain",
        "pacs-ingest:lane:L:drain-helper",
        "pacs-ingest:lane:L:verified",
        "pacs-ingest:lane:L:claimers",
        "pacs-ingest:lane:L:claims:w",
    ]


def test_no_module_but_keys_spells_a_key_name() -> None:
    spelled = re.compile(r"""["']pacs-ingest:[a-z{]""")
    elsewhere = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "pacs_ingest").rglob("*.py")
        if path != ROOT / "pacs_ingest/shared/keys.py" and spelled.search(path.read_text())
    ]
    assert elsewhere == []
