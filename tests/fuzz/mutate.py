"""A seeded byte mutator for the CI slice: libFuzzer's simplest moves (flip, set, insert,
erase, truncate, duplicate, splice two seeds, set a 16- or 32-bit length field to an edge value,
nudge a 32-bit length by a few bytes),
without coverage feedback, so it needs no atheris and gives the same inputs on every run."""

import random
import struct
from collections.abc import Iterator

_EDGES = (0, 1, 2, 3, 4, 5, 6, 7, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF)


def _length_field(data: bytearray, rng: random.Random) -> None:
    at = rng.randrange(len(data))
    value = rng.choice(_EDGES)
    packed = (
        struct.pack(rng.choice((">I", "<I")), value)
        if rng.random() < 0.5
        else struct.pack(rng.choice((">H", "<H")), value & 0xFFFF)
    )
    data[at : at + len(packed)] = packed


def length_fields(data: bytes) -> list[int]:
    """Where the 32-bit PDU and PDV length fields of a PDU stream are."""
    fields, position = [], 0
    while position + 6 <= len(data):
        fields.append(position + 2)
        end = position + 6 + int.from_bytes(data[position + 2 : position + 6], "big")
        item = position + 6
        while data[position] == 0x04 and item + 4 <= min(end, len(data)):
            fields.append(item)
            item += 4 + int.from_bytes(data[item : item + 4], "big")
        position = end
    return fields


def _nudge_length(data: bytearray, rng: random.Random) -> None:
    """A PDU or PDV length (or, in other input, any 32-bit field) off by a few bytes."""
    fields = length_fields(data) or [rng.randrange(max(len(data) - 3, 1))]
    at = rng.choice(fields)
    value = int.from_bytes(data[at : at + 4].ljust(4, b"\0"), "big") + rng.choice((-2, -1, 1, 2))
    data[at : at + 4] = struct.pack(">I", value & 0xFFFFFFFF)


_MOVES = (
    lambda data, at, other, rng: data.__setitem__(at, data[at] ^ 1 << rng.randrange(8)),
    lambda data, at, other, rng: data.__setitem__(at, rng.randrange(256)),
    lambda data, at, other, rng: data.__setitem__(
        slice(at, at), bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    ),
    lambda data, at, other, rng: data.__delitem__(slice(at, at + rng.randint(1, 64))),
    lambda data, at, other, rng: data.__delitem__(slice(at, None)),
    lambda data, at, other, rng: data.__setitem__(
        slice(at, at), data[at : at + rng.randint(1, 256)]
    ),
    lambda data, at, other, rng: data.__setitem__(
        slice(at, None), other[rng.randrange(len(other) + 1) :]
    ),
    lambda data, at, other, rng: _length_field(data, rng),
    lambda data, at, other, rng: _nudge_length(data, rng),
)


def mutate(seed: bytes, other: bytes, rng: random.Random) -> bytes:
    """`seed` after one to four random moves (`other` is spliced in by one of them)."""
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        if not data:
            data = bytearray(other[:64])
        else:
            rng.choice(_MOVES)(data, rng.randrange(len(data)), other, rng)
    return bytes(data)


def inputs(seeds: list[bytes], count: int, seed: int) -> Iterator[bytes]:
    """`count` inputs: the seeds themselves first, then mutants of them."""
    rng = random.Random(seed)
    yield from seeds[:count]
    for _ in range(count - min(count, len(seeds))):
        yield mutate(rng.choice(seeds), rng.choice(seeds), rng)
