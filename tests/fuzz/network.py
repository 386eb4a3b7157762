"""A seeded network fuzzer: mutated association and store streams sent over real sockets to a
live receiver, and what each connection saw.

A case is one connection: a well-formed session (`tests.fuzz.streams`) spoiled by one mutation
(flipped bytes, a lying PDU or PDV length, a huge declared length, a wrong PDU type, a PDV on a
context that was not accepted, a PDU spliced in where it does not belong, a truncation), sent in
random chunks; and what the sender does at the end: wait for the receiver to close, stall in the
middle of a PDU, or drop the connection mid-object. Floods open many connections at once, each
sending part of an A-ASSOCIATE-RQ. The same seed gives the same cases.

Every connection the sender does not drop itself must be closed by the receiver within the
configured timeouts; a C-STORE-RSP with Success is recorded with its SOP Instance UID, so the
caller can check that each acknowledged object reached the archive or failed/.
"""

import asyncio
import random
import struct
import time
from dataclasses import dataclass, field

from tests.fuzz import streams

MUTATIONS = (
    "none",
    "flip_bytes",
    "lying_pdu_length",
    "huge_pdu_length",
    "wrong_pdu_type",
    "lying_pdv_length",
    "unknown_context",
    "splice",
    "truncate",
    "high_bit",
)
ENDINGS = ("wait", "wait", "wait", "stall_mid_pdu", "drop_mid_object")


@dataclass
class Case:
    number: int
    mutation: str
    ending: str
    chunks: list[bytes]
    stall_at: int | None = None  # stop sending after this many bytes and wait


@dataclass
class Outcome:
    case: Case
    closed_by_receiver: bool = False
    seconds: float = 0.0
    acknowledged: list[str] = field(default_factory=list)  # SOP Instance UIDs answered Success
    pdu_types: list[int] = field(default_factory=list)
    error: str = ""


def _pdu_offsets(pdus: list[bytes]) -> list[int]:
    offsets, position = [], 0
    for pdu in pdus:
        offsets.append(position)
        position += len(pdu)
    return offsets


def _flip_bytes(pdu: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 4)):
        pdu[rng.randrange(len(pdu))] ^= 1 << rng.randrange(8)


def _lying_pdu_length(pdu: bytearray, rng: random.Random) -> None:
    length = int.from_bytes(pdu[2:6], "big") + rng.choice((-7, -2, -1, 1, 2, 100, 70000))
    pdu[2:6] = struct.pack(">I", max(length, 0) & 0xFFFFFFFF)


def _huge_pdu_length(pdu: bytearray, rng: random.Random) -> None:
    pdu[2:6] = struct.pack(">I", rng.choice((0xFFFFFFFF, 0x7FFFFFFF, 1 << 24, (1 << 20) + 1)))


def _wrong_pdu_type(pdu: bytearray, rng: random.Random) -> None:
    pdu[0] = rng.choice((0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x44, 0xFF))


def _lying_pdv_length(pdu: bytearray, rng: random.Random) -> None:
    if pdu[0] == 0x04:
        length = int.from_bytes(pdu[6:10], "big") + rng.choice((-3, -1, 1, 5, 1 << 20))
        pdu[6:10] = struct.pack(">I", max(length, 0) & 0xFFFFFFFF)


def _unknown_context(pdu: bytearray, rng: random.Random) -> None:
    if pdu[0] == 0x04:
        pdu[10] = rng.choice((0, 2, 5, 127, 255))


def _high_bit(pdu: bytearray, rng: random.Random) -> None:
    """A byte above 0x7F where UIDs and AE titles are: past the RQ's fixed header, or the PDV
    header of a command."""
    start = 10 if pdu[0] == 0x01 else 12
    if start < len(pdu):
        pdu[rng.randrange(start, len(pdu))] |= 0x80


_IN_PLACE = {
    "flip_bytes": _flip_bytes,
    "lying_pdu_length": _lying_pdu_length,
    "huge_pdu_length": _huge_pdu_length,
    "wrong_pdu_type": _wrong_pdu_type,
    "lying_pdv_length": _lying_pdv_length,
    "unknown_context": _unknown_context,
    "high_bit": _high_bit,
}
_SPLICED = (
    streams.associate_rq(),
    streams.A_RELEASE_RQ,
    streams.A_ABORT,
    struct.pack(">BxIxxxx", 0x06, 4),  # an A-RELEASE-RP we never asked for
    streams.p_data(1, 0x00, b"data without a command"),
    streams.p_data(3, 0x01, streams.c_echo_rq()[:20]),  # half a command
)


def _mutate(pdus: list[bytes], mutation: str, rng: random.Random) -> list[bytes]:
    """`pdus` with one mutation applied (a new list)."""
    pdus = list(pdus)
    if mutation == "high_bit":  # the RQ or a command: where the UIDs are
        index = rng.choice([0, *(i for i, p in enumerate(pdus) if p[:1] == b"\x04" and p[11] & 1)])
    else:
        index = rng.randrange(len(pdus))
    if mutation == "splice":
        pdus.insert(index, rng.choice(_SPLICED))
    elif mutation == "truncate":
        pdus = [*pdus[:index], pdus[index][: rng.randrange(len(pdus[index]))]]
    else:
        pdu = bytearray(pdus[index])
        _IN_PLACE[mutation](pdu, rng)
        pdus[index] = bytes(pdu)
    return pdus


def _chunks(stream: bytes, rng: random.Random) -> list[bytes]:
    chunks, position = [], 0
    while position < len(stream):
        size = rng.choice((3, 6, 100, 1500, 16384, 1 << 20))
        chunks.append(stream[position : position + size])
        position += size
    return chunks


def make_case(number: int, rng: random.Random) -> Case:
    """Case `number`: a session of 0 to 3 stores, mutated, chunked, with an ending."""
    uids = [f"1.2.826.0.1.3680043.9.7777.{number}.{i}".encode() for i in range(rng.randint(0, 3))]
    size = rng.choice((16, 2000, 40000))
    fragment = rng.choice((100, 4096, 16000))
    pdus, stores = streams.session(uids, size=size, fragment=fragment, echo=rng.random() < 0.5)
    mutation = rng.choice(MUTATIONS)
    if mutation != "none":
        pdus = _mutate(pdus, mutation, rng)
    ending = rng.choice(ENDINGS)
    stream = b"".join(pdus)
    stall_at = None
    if ending == "stall_mid_pdu":
        offsets = _pdu_offsets(pdus)
        at = rng.randrange(len(pdus))
        stall_at = offsets[at] + max(1, len(pdus[at]) // 2)
        stream = stream[:stall_at]
    elif ending == "drop_mid_object":
        if stores:
            store = rng.choice(stores)
            offsets = _pdu_offsets(pdus)
            cut = offsets[min(store.last_pdu, len(offsets) - 1)]
            stream = stream[: max(cut, 1)]
        else:
            stream = stream[: rng.randrange(1, len(stream) + 1)]
    return Case(number, mutation, ending, _chunks(stream, rng), stall_at)


async def _read_pdus(reader: asyncio.StreamReader, outcome: Outcome) -> None:
    """Read what the receiver sends until it closes; note the Success C-STORE-RSPs."""
    command = bytearray()
    while True:
        try:
            header = await reader.readexactly(6)
            body = await reader.readexactly(int.from_bytes(header[2:6], "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        outcome.pdu_types.append(header[0])
        position = 0
        while header[0] == 0x04 and position + 6 <= len(body):
            length = int.from_bytes(body[position : position + 4], "big")
            command += body[position + 6 : position + 4 + length]
            if body[position + 5] & 0x02:
                uid = _acknowledged_store(bytes(command))
                if uid is not None:
                    outcome.acknowledged.append(uid)
                command.clear()
            position += 4 + length


def _acknowledged_store(command_set: bytes) -> str | None:
    """The Affected SOP Instance UID of a C-STORE-RSP with Success, else None."""
    values, offset = {}, 0
    while offset + 8 <= len(command_set):
        _, element, length = struct.unpack_from("<HHI", command_set, offset)
        values[element] = command_set[offset + 8 : offset + 8 + length]
        offset += 8 + length
    if values.get(0x0100) == b"\x01\x80" and values.get(0x0900) == b"\x00\x00":
        return values.get(0x1000, b"").rstrip(b"\0 ").decode("ascii", "replace")
    return None


async def run_case(port: int, case: Case, close_within: float) -> Outcome:
    """Send `case` and wait (at most `close_within` s) for the receiver to close."""
    outcome = Outcome(case)
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), close_within
        )
    except (OSError, TimeoutError) as exc:
        outcome.error = f"connect: {exc!r}"
        return outcome
    reading = asyncio.create_task(_read_pdus(reader, outcome))
    try:
        for chunk in case.chunks:
            if reading.done():
                break
            writer.write(chunk)
            await writer.drain()
        if case.ending == "drop_mid_object":
            writer.transport.abort()  # RST, mid-object
            reading.cancel()
            return outcome
        await asyncio.wait_for(asyncio.shield(reading), close_within)
        outcome.closed_by_receiver = True
    except TimeoutError:
        outcome.error = f"not closed after {close_within} s"
    except (ConnectionError, OSError):
        outcome.closed_by_receiver = True  # reset by the receiver while we were sending
        await asyncio.wait_for(asyncio.shield(reading), close_within)
    finally:
        outcome.seconds = time.monotonic() - started
        reading.cancel()
        writer.transport.abort()
    return outcome


async def flood(port: int, connections: int, rng: random.Random, close_within: float) -> int:
    """Open `connections` at once, each sending part of an A-ASSOCIATE-RQ, then waiting; the
    number the receiver failed to close within `close_within` s."""
    rq = streams.associate_rq()

    async def one() -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return True  # refused: not held
        try:
            writer.write(rq[: rng.randrange(0, len(rq))])
            await writer.drain()
            await asyncio.wait_for(reader.read(), close_within)
            return True
        except TimeoutError:
            return False
        except (ConnectionError, OSError):
            return True
        finally:
            writer.transport.abort()

    results = await asyncio.gather(*(one() for _ in range(connections)))
    return results.count(False)


async def campaign(
    port: int, cases: int, *, seed: int, concurrency: int, close_within: float, floods: int = 0
) -> tuple[list[Outcome], int]:
    """Run `cases` cases, `concurrency` at a time, and `floods` floods of 200 connections spread
    evenly among them; the outcomes and how many flood connections were held too long."""
    rng = random.Random(seed)
    made = [make_case(number, random.Random(rng.getrandbits(64))) for number in range(cases)]
    limit = asyncio.Semaphore(concurrency)
    flood_rng = random.Random(seed + 1)
    flood_at = {cases * (i + 1) // (floods + 1) for i in range(floods)}
    flood_tasks: list[asyncio.Task[int]] = []

    async def limited(case: Case) -> Outcome:
        async with limit:
            if case.number in flood_at:
                flood_tasks.append(asyncio.create_task(flood(port, 200, flood_rng, close_within)))
            return await run_case(port, case, close_within)

    outcomes = await asyncio.gather(*(limited(case) for case in made))
    held = sum(await asyncio.gather(*flood_tasks))
    return list(outcomes), held
