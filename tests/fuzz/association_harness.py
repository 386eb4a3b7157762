"""The whole upper layer in process: `receiver.association.Association` on a real event loop,
with a real spool and group commit, fed a byte stream in chunks, so the state machine's paths
get coverage too. The transport is a plain object that records what the association writes (the
network campaign, `benchmarks/fuzz_network.py`, uses real sockets).

What must hold for any stream:
- no exception reaches the event loop, and every event has a transition (`KeyError` otherwise);
- everything written is whole PDUs, nothing is written after the transport is closed;
- once the peer has closed, the association is in Sta1, out of the registry, and no part file is
  left in incoming/;
- every C-STORE answered Success is in ready/.
"""

import asyncio
import random
import tempfile
import zlib
from pathlib import Path

from pacs_ingest.receiver import dimse, negotiation, pdu, sop_classes
from pacs_ingest.receiver.associate_pdu import Acceptor
from pacs_ingest.receiver.association import Association, AssociationRules, Registry
from pacs_ingest.receiver.commit import GroupCommit
from pacs_ingest.receiver.service import Storage, StorePolicy
from pacs_ingest.receiver.states import State
from pacs_ingest.shared.spool import ReadyObject, Spool
from tests.fuzz.harnesses import check

_SCRATCH = Path("/dev/shm") if Path("/dev/shm").is_dir() else None  # fsync costs nothing there
_IMPLEMENTATION = ("2.25.36703735256449800250220714501275083266", "PACSINGEST_FUZZ")


_LANE = "fuzz"


def _waiting(spool: Spool) -> list[Path]:
    return list(spool.ready.rglob("*.dcm"))


class RecordingTransport:
    """What `asyncio.Transport` offers a protocol, recording the writes."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        check(not self.closed, "a write after close")
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0  # every write is taken at once

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default


class AssociationHarness:
    """One spool, one group commit and one event loop, reused for every input."""

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="fuzz-association-", dir=_SCRATCH)
        self.spool = Spool(self._directory.name)
        self.spool.create()
        self.enqueued: list[ReadyObject] = []
        self.spool.open_lane(_LANE, b"{}")
        self.committer = GroupCommit(self.spool, _LANE, self.enqueued.extend, wait_for_queue=False)
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._on_loop_error)
        self._loop_errors: list[str] = []
        policy = StorePolicy(status=dimse.SUCCESS, ignore=False, require_queue=False)
        self.storage = Storage(self.spool, self.committer, policy)
        self.rules = {
            accept_unknown: self._rules(accept_unknown) for accept_unknown in (False, True)
        }

    def _rules(self, accept_unknown: bool) -> AssociationRules:
        return AssociationRules(
            policy=negotiation.AssociationPolicy(
                None,
                frozenset(),
                sop_classes.ACCEPT_UNKNOWN if accept_unknown else sop_classes.load(),
            ),
            acceptor=Acceptor(16384, *_IMPLEMENTATION),
            request_timeout_s=30.0,
            idle_timeout_s=30.0,
            soclose_delay_s=0.0,
            max_pdulen_snd=16378,
            max_associations=100,
        )

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        self._loop_errors.append(f"{context.get('message')}: {context.get('exception')!r}")

    def close(self) -> None:
        self.committer.close()
        self.loop.close()
        self._directory.cleanup()

    def __call__(self, data: bytes) -> None:
        seed = zlib.crc32(data)
        # What an earlier finding left behind:
        for path in [*self.spool.process_incoming().iterdir(), *_waiting(self.spool)]:
            path.unlink()
        self._loop_errors.clear()
        self.enqueued.clear()
        self.loop.run_until_complete(self._drive(data, random.Random(seed), bool(seed & 1)))
        check(not self._loop_errors, f"the event loop saw {self._loop_errors}")

    async def _drive(self, data: bytes, rng: random.Random, accept_unknown: bool) -> None:
        registry = Registry(self.storage)
        association = Association(self.rules[accept_unknown], registry)
        transport = RecordingTransport()
        association.connection_made(transport)  # type: ignore[arg-type]
        position = 0
        while position < len(data) and not transport.closed:
            size = rng.choice((1, 6, 10, 100, 4096, 65536))
            association.data_received(data[position : position + size])
            position += size
            await asyncio.sleep(0)
        await self._settle(association)
        if not transport.closed:
            association.connection_lost(None)  # the peer goes away
        await self._settle(association)
        check(association.state is State.Sta1, f"left in {association.state.name}")
        check(not registry.live, "the association is still registered")
        check(registry.established == 0, f"{registry.established} associations established")
        leftovers = list(self.spool.process_incoming().iterdir())
        check(not leftovers, f"{len(leftovers)} part files left in incoming/")
        successes = _store_successes(bytes(transport.written))
        ready = _waiting(self.spool)
        check(len(ready) >= successes, f"{successes} stores acknowledged, {len(ready)} ready")

    async def _settle(self, association: Association) -> None:
        """Let the stores in flight finish their group commit and answer."""
        for _ in range(2000):
            service = association.service
            if service is None or not service.answers_due:
                break
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)


def _store_successes(written: bytes) -> int:
    """The C-STORE-RSPs with status Success among what the association wrote (and a check that
    it wrote whole PDUs of known types)."""
    successes, offset, command = 0, 0, bytearray()
    while offset < len(written):
        check(offset + 6 <= len(written), "a PDU header cut short")
        pdu_type = written[offset]
        check(pdu_type in _WRITTEN_PDUS, f"wrote PDU type {pdu_type}")
        end = offset + 6 + int.from_bytes(written[offset + 2 : offset + 6], "big")
        check(end <= len(written), "a PDU cut short")
        position = offset + 6
        while pdu_type == pdu.P_DATA_TF and position < end:
            item = int.from_bytes(written[position : position + 4], "big")
            command += written[position + 6 : position + 4 + item]
            if written[position + 5] & pdu.LAST_FRAGMENT:
                response = dimse.decode(bytes(command))
                stored = response.command_field == dimse.C_STORE_RQ | dimse.RESPONSE
                successes += stored and _status(bytes(command)) == dimse.SUCCESS
                command.clear()
            position += 4 + item
        offset = end
    return successes


_WRITTEN_PDUS = (
    pdu.A_ASSOCIATE_AC,
    pdu.A_ASSOCIATE_RJ,
    pdu.P_DATA_TF,
    pdu.A_RELEASE_RQ,
    pdu.A_RELEASE_RP,
    pdu.A_ABORT,
)


def _status(command_set: bytes) -> int:
    offset = 0
    while offset + 8 <= len(command_set):
        element = int.from_bytes(command_set[offset + 2 : offset + 4], "little")
        length = int.from_bytes(command_set[offset + 4 : offset + 8], "little")
        if element == dimse.STATUS:
            return int.from_bytes(command_set[offset + 8 : offset + 10], "little")
        offset += 8 + length
    return -1


_HARNESS: AssociationHarness | None = None


def association(data: bytes) -> None:
    global _HARNESS  # noqa: PLW0603 - one harness per fuzzing process, made on first use
    if _HARNESS is None:
        _HARNESS = AssociationHarness()
    _HARNESS(data)
