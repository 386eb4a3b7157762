"""What must hold for any input to the receiver's decoders: one function per decoder, taking
arbitrary bytes, returning normally or raising `Violation` (an unexpected exception is a finding
too). atheris (`tests.fuzz.run_atheris`) and the seeded mutator of the CI slice
(`tests/fuzz/test_decoders_fuzz.py`) both call them.

- `framer`: the stream is cut in chunks chosen by the input's CRC, once whole and once chunked,
  with a sink that sometimes asks to stop (and is resumed the way the association resumes).
  Only `on_invalid` may report a problem; both feeds must see the same events; every byte is
  accounted for (the events rebuild the stream exactly); nothing beyond a PDU header, a PDV
  header or one A-ASSOCIATE-sized PDU is ever buffered.
- `associate_rq`: only PduError escapes `decode_rq`; what it accepts, pynetdicom reads the same
  way where both read it, and the A-ASSOCIATE-AC we would answer decodes in pynetdicom.
- `command_set`: only CommandError escapes `dimse.decode`; a decoded request's response decodes.
"""

import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from pynetdicom.pdu import A_ASSOCIATE_AC as PynetdicomAC
from pynetdicom.pdu import A_ASSOCIATE_RQ as PynetdicomRQ

from pacs_ingest.receiver import dimse, negotiation, sop_classes
from pacs_ingest.receiver.associate_pdu import Acceptor, PduError, decode_rq, encode_ac
from pacs_ingest.receiver.framing import _PDU_BODY, MAX_ASSOCIATE_PDU, Framer
from pacs_ingest.receiver.pdu import HEADER_LENGTH, P_DATA_TF, PDV_HEADER_LENGTH

# The receive PDU lengths a receiver may advertise: unlimited, the smallest allowed, the
# reference's and ours.
_MAX_PDU_LENGTHS = (0, 7, 16378, 131072)
_IMPLEMENTATION = ("2.25.36703735256449800250220714501275083266", "PACSINGEST_FUZZ")


class Violation(AssertionError):
    """A property of the decoders that an input broke."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Violation(message)


# -- the framer -------------------------------------------------------------------------------


@dataclass
class RecordingSink:
    """Records what the framer reports, as the stream it describes."""

    rng: random.Random
    stop_often: bool
    events: list[tuple] = field(default_factory=list)
    rebuilt: bytearray = field(default_factory=bytearray)  # the stream the events describe
    pdv_open: bool = False
    invalid: bool = False

    def _after_invalid(self) -> None:
        check(not self.invalid, "an event after on_invalid")

    def on_pdu(self, pdu_type: int, pdu: bytes) -> None:
        self._after_invalid()
        check(not self.pdv_open, "a PDU inside a PDV")
        check(pdu[0] == pdu_type, "on_pdu type differs from its header")
        check(len(pdu) <= HEADER_LENGTH + MAX_ASSOCIATE_PDU, f"a PDU of {len(pdu)} bytes")
        check(int.from_bytes(pdu[2:6], "big") == len(pdu) - HEADER_LENGTH, "PDU length lies")
        self.events.append(("pdu", bytes(pdu)))
        self.rebuilt += pdu

    def on_p_data(self) -> bool:
        self._after_invalid()
        check(not self.pdv_open, "a P-DATA-TF inside a PDV")
        self.events.append(("p_data",))
        return True

    def on_fragment(self, context_id: int, control: int) -> Callable[[memoryview], None]:
        self._after_invalid()
        check(not self.pdv_open, "a PDV inside a PDV")
        self.pdv_open = True
        self.events.append(("pdv", context_id, control, bytearray()))
        return self._fragment_data

    def _fragment_data(self, data: memoryview) -> None:
        self._after_invalid()
        check(self.pdv_open, "fragment data outside a PDV")
        check(isinstance(data, memoryview), "fragment data copied out of its chunk")
        self.events[-1][3].extend(data)

    def on_fragment_end(self) -> bool:
        self._after_invalid()
        check(self.pdv_open, "a PDV ends that never began")
        self.pdv_open = False
        return self.stop_often and self.rng.random() < 0.3

    def on_invalid(self, reason: int, message: str) -> None:
        self._after_invalid()
        self.invalid = True
        self.events.append(("invalid", reason, message))


def _feed_all(framer: Framer, chunks: list[bytes]) -> int:
    """Feed `chunks` as `receiver.association` does: what the framer did not take (it asked to
    stop) is fed again first. The bytes taken."""
    taken = 0
    for chunk in chunks:
        view = memoryview(chunk)
        while view and not framer.broken:
            used = framer.feed(view)
            check(0 <= used <= len(view), f"feed took {used} of {len(view)} bytes")
            check(used == len(view) or framer.broken or used > 0, "feed made no progress")
            taken += used
            view = view[used:]
            # white-box: what the framer holds between calls
            partial = len(framer._partial)
            if framer._reading == _PDU_BODY:  # a PDU other than P-DATA-TF, arriving
                check(partial <= MAX_ASSOCIATE_PDU, f"{partial} bytes of a PDU buffered")
            else:
                check(partial <= PDV_HEADER_LENGTH, f"{partial} bytes of a header buffered")
            # a PDV never reaches past its PDU, a PDU never past its declared length
            left, pdv_left = framer._pdu_left, framer._pdv_left
            if not framer.broken:
                check(0 <= pdv_left <= left, f"PDU {left}, PDV {pdv_left} bytes left")
    return taken


def _rebuild(sink: RecordingSink) -> tuple[bytes, list[int]]:
    """The bytes the events describe (each PDU, each P-DATA-TF header and PDV) and where each
    PDU starts. The reserved byte of a PDU header is rebuilt as 0: PS3.8 9.3.1 has a receiver
    ignore reserved fields, so the framer does not report them."""
    out, starts = bytearray(), []
    p_data: bytearray | None = None
    for event in [*sink.events, ("end",)]:
        if event[0] == "pdv":
            assert p_data is not None
            _, context_id, control, value = event
            p_data += struct.pack(">IBB", len(value) + 2, context_id, control) + value
            continue
        if p_data is not None:
            starts.append(len(out))
            out += struct.pack(">BxI", P_DATA_TF, len(p_data)) + p_data
            p_data = None
        if event[0] == "pdu":
            starts.append(len(out))
            out += event[1]
        elif event[0] == "p_data":
            p_data = bytearray()
    return bytes(out), starts


def _rebuilds(sink: RecordingSink, stream: bytes, complete: bool) -> bool:
    """Whether the events rebuild `stream` (up to the PDU still arriving, unless `complete`)."""
    rebuilt, starts = _rebuild(sink)
    if not complete:  # the last PDU begun is not whole yet: compare what precedes it
        end = starts[-1] if starts and sink.events and sink.events[-1][0] != "pdu" else len(rebuilt)
        rebuilt, starts, stream = rebuilt[:end], [s for s in starts if s < end], stream[:end]
    expected, got = bytearray(stream), bytearray(rebuilt)
    for start in starts:
        for side in (expected, got):
            if start + 1 < len(side):
                side[start + 1] = 0
    return got == expected


def _chunks(data: bytes, rng: random.Random) -> list[bytes]:
    chunks, position = [], 0
    while position < len(data):
        size = rng.choice((1, 2, 5, 6, 7, 64, 1000, 65536))
        chunks.append(data[position : position + size])
        position += size
    return chunks


def framer(data: bytes) -> None:
    seed = zlib.crc32(data)
    max_pdu = _MAX_PDU_LENGTHS[seed % len(_MAX_PDU_LENGTHS)]
    runs = []
    for chunked in (False, True):
        rng = random.Random(seed)
        sink = RecordingSink(rng, stop_often=chunked)
        machine = Framer(sink, max_pdu)
        taken = _feed_all(machine, _chunks(data, rng) if chunked else [data])
        check(taken == len(data) or machine.broken, f"{len(data) - taken} bytes left unread")
        if not machine.broken:
            complete = not machine.mid_pdu
            check(_rebuilds(sink, data, complete), "the events do not rebuild the stream")
        runs.append(_merged(sink.events))
    check(runs[0] == runs[1], "chunking changed what the framer reported")


def _merged(events: list[tuple]) -> list[tuple]:
    """Events with each PDV's data joined (chunking splits it differently)."""
    return [(e[0], e[1], e[2], bytes(e[3])) if e[0] == "pdv" else e for e in events]


# -- the A-ASSOCIATE-RQ -----------------------------------------------------------------------

_ANY = negotiation.AssociationPolicy(None, frozenset(), sop_classes.ACCEPT_UNKNOWN, 0, 0)
_DEFAULT = negotiation.AssociationPolicy(None, frozenset(), sop_classes.load(), 0, 0)


def associate_rq(data: bytes) -> None:
    try:
        rq = decode_rq(data)
    except PduError:
        return
    # pynetdicom takes milliseconds per request: one input in 8 is read back through it.
    cross_check = zlib.crc32(data) % 8 == 0
    if cross_check:
        theirs = PynetdicomRQ()
        try:
            theirs.decode(data)
        except Exception:  # pynetdicom is stricter in places; nothing to compare then
            pass
        else:
            _compare_with_pynetdicom(rq, theirs)
    for policy in (_DEFAULT, _ANY):
        answer = negotiation.negotiate(rq.request, policy)
        if not isinstance(answer, negotiation.Acceptance):
            continue
        identity = rq.user_identity
        response = (
            negotiation.identity_response(
                identity.identity_type, identity.positive_response_requested, identity.primary_field
            )
            if identity is not None
            else None
        )
        ac = encode_ac(rq, answer, Acceptor(131072, *_IMPLEMENTATION), response)
        if cross_check:
            decoded = PynetdicomAC()
            decoded.decode(ac)
            results = {cx.context_id: cx.result for cx in decoded.presentation_context}
            expected = {cx.context_id: cx.result for cx in answer.contexts}
            check(results == expected, f"the AC says {results}, we decided {expected}")


def _compare_with_pynetdicom(rq, theirs: PynetdicomRQ) -> None:
    request = rq.request
    if rq.called_field.isascii():
        check(
            theirs.called_ae_title.strip() == rq.called_field.decode().strip(),
            "Called AE title differs from pynetdicom's",
        )
    mine = {cx.context_id: cx for cx in request.contexts}
    for context in theirs.presentation_context:
        ours = mine.get(context.context_id)
        check(ours is not None, f"context {context.context_id} missing")
        abstract_items = [
            item
            for item in context.abstract_transfer_syntax_sub_items
            if type(item).__name__ == "AbstractSyntaxSubItem"
        ]
        # With several abstract syntax items (PS3.8 allows one) pynetdicom keeps the first and
        # we the last, as dcm4che's decoder does: nothing to compare.
        if len(abstract_items) == 1 and ours.abstract_syntax.isascii():
            check(
                str(context.abstract_syntax).rstrip("\0 ") == ours.abstract_syntax,
                "abstract syntax differs from pynetdicom's",
            )
    maximum = (
        [
            item.maximum_length_received
            for item in theirs.user_information.user_data
            if type(item).__name__ == "MaximumLengthSubItem"
        ]
        if theirs.user_information
        else []
    )
    if maximum:
        check(maximum[0] == rq.maximum_length, "maximum length differs from pynetdicom's")


# -- the DIMSE command set --------------------------------------------------------------------


def command_set(data: bytes) -> None:
    try:
        command = dimse.decode(data)
    except dimse.CommandError:
        return
    check(0 <= command.command_field <= 0xFFFF, "Command Field out of range")
    if command.is_response:
        return
    for status, comment in ((dimse.SUCCESS, ""), (dimse.OUT_OF_RESOURCES, "cannot spool: x" * 9)):
        encoded = dimse.response(command, status, with_uids=True, error_comment=comment)
        answer = dimse.decode(encoded)
        check(answer.command_field == command.command_field | dimse.RESPONSE, "response field")
        check(not answer.has_data_set, "a response with a data set")
        length = int.from_bytes(encoded[8:12], "little")
        check(length == len(encoded) - 12, "Command Group Length lies")
        responded_to = struct.pack(
            "<HHIH", 0, dimse.MESSAGE_ID_BEING_RESPONDED_TO, 2, command.message_id
        )
        check(responded_to in encoded, "Message ID Being Responded To")


HARNESSES = {"framer": framer, "associate_rq": associate_rq, "command_set": command_set}
