"""`python -m tests.commit_burst SPOOL REDIS_URL COUNT`: one receiver process's group commit of
COUNT stores arriving together, as a child the tests can trace (strace counts its fsyncs).

It prints one JSON line: each store's Commit.
"""

import asyncio
import sys
import time
from dataclasses import asdict

import orjson

from pacs_ingest.receiver.commit import Commit, GroupCommit
from pacs_ingest.receiver.store import Origin, PartFile
from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.jobs import DrainJob
from pacs_ingest.shared.lane import open_lane, push
from pacs_ingest.shared.queue import connect, ingest_queue
from pacs_ingest.shared.spool import ReadyObject, Spool

ORIGIN = Origin("1.2.3.4", "TEST", "BURST")


def committer(spool: Spool, redis_url: str, *, wait_for_queue: bool) -> GroupCommit:
    """A group commit into `spool`'s lane, enqueuing as the receiver does (receiver.server)."""
    lane = open_lane(spool, Filing(str(spool.root.parent / "archive"), None, 0, 0))
    rq_queue = ingest_queue(connect(redis_url))
    drain = DrainJob(str(spool), lane)

    def enqueue(objects: list[ReadyObject]) -> None:
        refs = [item.ref.partition("/")[2] for item in objects]
        push(rq_queue, drain, refs, now=time.time(), counted=objects)

    return GroupCommit(spool, lane, enqueue, wait_for_queue=wait_for_queue)


def part(spool: Spool, index: int) -> PartFile:
    """A received store: its part file written, not yet durable."""
    stored = PartFile(
        spool,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
        sop_instance_uid=f"1.2.3.{index}",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        origin=ORIGIN,
    )
    stored.write(memoryview(bytes(1000)))
    stored.finish()
    return stored


async def commit_all(
    group: GroupCommit, parts: list[PartFile], *, one_turn: bool = False
) -> list[Commit]:
    """Commit `parts` one per turn of the loop, as stores of different associations complete,
    or all in one turn (they go to the fsync threads together)."""
    loop = asyncio.get_running_loop()
    commits = []
    for stored in parts:
        commits.append(group.commit(stored, loop))
        if not one_turn:
            await asyncio.sleep(0)
    return list(await asyncio.gather(*commits))


def main() -> None:
    spool = Spool(sys.argv[1])
    spool.create()
    group = committer(spool, sys.argv[2], wait_for_queue=False)
    parts = [part(spool, index) for index in range(int(sys.argv[3]))]
    commits = asyncio.run(commit_all(group, parts, one_turn=sys.argv[4:] == ["one-turn"]))
    group.close()
    print(orjson.dumps({"commits": [asdict(c) for c in commits]}).decode())


if __name__ == "__main__":
    main()
