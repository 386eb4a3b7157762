"""The upper layer's codecs, checked against an independent implementation (pynetdicom) and
against hostile input: the state table, A-ASSOCIATE-RQ/AC, command sets, PDU framing."""

import string
import struct
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from pynetdicom import fsm
from pynetdicom.dimse_messages import C_STORE_RSP, N_GET_RQ
from pynetdicom.dimse_primitives import N_GET
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    AsynchronousOperationsWindowNegotiation,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
    UserIdentityNegotiation,
)
from pynetdicom.presentation import build_context

from pacs_ingest.receiver import dimse
from pacs_ingest.receiver.associate_pdu import Acceptor, PduError, decode_rq, encode_ac
from pacs_ingest.receiver.framing import Framer
from pacs_ingest.receiver.negotiation import Acceptance, ContextResult, RoleReply
from pacs_ingest.receiver.states import TRANSITIONS, Action, Event, State
from tests.raw_peer import c_echo, c_store, split_pdus

UIDS = st.lists(st.integers(1, 999_999), min_size=1, max_size=8).map(
    lambda parts: "1.2." + ".".join(map(str, parts))
)
AE_TITLES = st.text(string.ascii_uppercase + string.digits + "_", min_size=1, max_size=16)


def test_the_transition_table_is_the_one_pynetdicom_implements() -> None:
    ours = {
        (event.name, state.name): action.value[0] for (event, state), action in TRANSITIONS.items()
    }
    assert ours == fsm.TRANSITION_TABLE


def test_the_p_data_fast_path_is_the_tables_entry() -> None:
    """Association.on_p_data takes DT-2 in Sta6 directly, without the general dispatch."""
    action = TRANSITIONS[(Event.Evt10, State.Sta6)]
    assert action is Action.DT_2
    assert action.method == "_dt_2" and action.next_state is State.Sta6


@st.composite
def requests(draw: st.DrawFn) -> dict:
    count = draw(st.integers(1, 20))
    return {
        "called": draw(AE_TITLES),
        "calling": draw(AE_TITLES),
        "contexts": [
            (2 * index + 1, draw(UIDS), draw(st.lists(UIDS, min_size=1, max_size=4, unique=True)))
            for index in range(count)
        ],
        "max_length": draw(st.integers(0, 2**32 - 1)),
        "implementation": draw(UIDS),
        "version": draw(AE_TITLES),
        "window": draw(st.none() | st.tuples(st.integers(0, 65535), st.integers(0, 65535))),
        # (pynetdicom refuses to propose neither role)
        "roles": draw(
            st.dictionaries(
                UIDS, st.sampled_from([(True, False), (False, True), (True, True)]), max_size=3
            )
        ),
        "identity": draw(
            st.none() | st.tuples(st.integers(1, 5), st.booleans(), st.binary(max_size=40))
        ),
    }


def _encode_rq(facts: dict) -> bytes:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.called_ae_title, primitive.calling_ae_title = facts["called"], facts["calling"]
    contexts = []
    for context_id, abstract, syntaxes in facts["contexts"]:
        context = build_context(abstract, syntaxes)
        context.context_id = context_id
        contexts.append(context)
    primitive.presentation_context_definition_list = contexts
    items: list = [MaximumLengthNotification(), ImplementationClassUIDNotification()]
    items[0].maximum_length_received = facts["max_length"]
    items[1].implementation_class_uid = facts["implementation"]
    version = ImplementationVersionNameNotification()
    version.implementation_version_name = facts["version"]
    items.append(version)
    if facts["window"] is not None:
        window = AsynchronousOperationsWindowNegotiation()
        window.maximum_number_operations_invoked, window.maximum_number_operations_performed = (
            facts["window"]
        )
        items.append(window)
    for uid, (scu, scp) in facts["roles"].items():
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid, role.scu_role, role.scp_role = uid, scu, scp
        items.append(role)
    if facts["identity"] is not None:
        identity = UserIdentityNegotiation()
        identity.user_identity_type, identity.positive_response_requested = facts["identity"][:2]
        identity.primary_field = facts["identity"][2] or b"x"
        if identity.user_identity_type == 2:
            identity.secondary_field = b"secret"
        items.append(identity)
    primitive.user_information = items
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return pdu.encode()


@settings(max_examples=100, deadline=None)
@given(requests())
def test_a_request_decodes_to_what_pynetdicom_encoded(facts: dict) -> None:
    rq = decode_rq(_encode_rq(facts))
    assert rq.protocol_version == 1
    assert rq.request.called_ae_title.strip() == facts["called"]
    assert rq.request.calling_ae_title.strip() == facts["calling"]
    assert [
        (c.context_id, c.abstract_syntax, list(c.transfer_syntaxes)) for c in rq.request.contexts
    ] == facts["contexts"]
    assert rq.maximum_length == facts["max_length"]
    assert rq.implementation_class_uid == facts["implementation"]
    assert rq.implementation_version_name == facts["version"]
    assert rq.request.async_ops == facts["window"]
    assert dict(rq.request.roles) == facts["roles"]
    if facts["identity"] is not None:
        assert rq.user_identity is not None
        assert rq.user_identity.identity_type == facts["identity"][0]
        assert rq.user_identity.positive_response_requested == facts["identity"][1]


@settings(max_examples=100, deadline=None)
@given(requests(), st.data())
def test_an_ac_we_encode_decodes_in_pynetdicom_to_what_we_decided(
    facts: dict, data: st.DataObject
) -> None:
    rq = decode_rq(_encode_rq(facts))
    results = tuple(
        ContextResult(
            c.context_id,
            c.abstract_syntax,
            data.draw(st.sampled_from([0, 3, 4])),
            c.transfer_syntaxes[0],
        )
        for c in rq.request.contexts
    )
    roles = tuple(RoleReply(uid, scu, False) for uid, (scu, _) in facts["roles"].items())
    window = facts["window"]
    acceptance = Acceptance(results, roles, window)
    acceptor = Acceptor(131072, "2.25.1", "PACSINGEST_TEST")
    ac = A_ASSOCIATE_AC()
    ac.decode(encode_ac(rq, acceptance, acceptor, b"" if facts["identity"] else None))
    primitive = ac.to_primitive()
    assert [
        (c.context_id, c.result, c.transfer_syntax[0])
        for c in primitive.presentation_context_definition_results_list
    ] == [(r.context_id, r.result, r.transfer_syntax) for r in results]
    user = {type(item).__name__: item for item in primitive.user_information}
    assert user["MaximumLengthNotification"].maximum_length_received == 131072
    assert user["ImplementationClassUIDNotification"].implementation_class_uid == "2.25.1"
    if window is not None:
        assert (
            user["AsynchronousOperationsWindowNegotiation"].maximum_number_operations_invoked,
            user["AsynchronousOperationsWindowNegotiation"].maximum_number_operations_performed,
        ) == window
    assert (ac.called_ae_title, ac.calling_ae_title) == (facts["called"], facts["calling"])


def test_every_truncation_of_a_request_is_refused_with_a_pdu_error() -> None:
    whole = _encode_rq(
        {
            "called": "INGEST",
            "calling": "SCU",
            "contexts": [(1, "1.2.3", ["1.2.840.10008.1.2"])],
            "max_length": 16384,
            "implementation": "1.2.3.4",
            "version": "V1",
            "window": (2, 2),
            "roles": {"1.2.3": (True, False)},
            "identity": (2, True, b"alice"),
        }
    )
    for end in range(len(whole)):
        truncated = bytearray(whole[:end])
        if end >= 6:
            truncated[2:6] = (end - 6).to_bytes(4, "big")  # a header that tells the truth
        try:
            decode_rq(bytes(truncated))
        except PduError:
            continue  # what may happen; anything else escaping is a bug


def test_commands_decode_to_the_fields_pynetdicom_encoded() -> None:
    store = split_pdus(c_store(b"\x08\x00\x18\x00", "1.2.3.4", message_id=9))[0]
    command = dimse.decode(store[12:])
    assert (command.command_field, command.message_id, command.sop_class_uid) == (
        dimse.C_STORE_RQ,
        9,
        "1.2.840.10008.5.1.4.1.1.2",
    )
    assert command.sop_instance_uid == "1.2.3.4" and command.has_data_set
    echo = dimse.decode(split_pdus(c_echo(message_id=3))[0][12:])
    assert (echo.command_field, echo.has_data_set) == (dimse.C_ECHO_RQ, False)
    primitive = N_GET()
    primitive.MessageID, primitive.RequestedSOPClassUID, primitive.RequestedSOPInstanceUID = (
        5,
        "1.2.9",
        "1.2.9.1",
    )
    message = N_GET_RQ()
    message.primitive_to_message(primitive)
    encoded = b"".join(
        p.presentation_data_value_list[0][1][1:] for p in message.encode_msg(1, 16382)
    )
    assert dimse.decode(encoded).sop_class_uid == "1.2.9"  # N-GET names its Requested class


def test_a_response_decodes_in_pynetdicom() -> None:
    request = dimse.Command(dimse.C_STORE_RQ, 7, "1.2.840.10008.5.1.4.1.1.2", "1.2.3", True)
    encoded = dimse.response(request, 0xA700, with_uids=True, error_comment="disk full: No space")
    message = C_STORE_RSP()
    message.command_set = __import__("pydicom").dcmread(
        __import__("io").BytesIO(encoded), force=True
    )
    assert message.command_set.Status == 0xA700
    assert message.command_set.MessageIDBeingRespondedTo == 7
    assert message.command_set.ErrorComment == "disk full: No space"
    assert message.command_set.AffectedSOPInstanceUID == "1.2.3"
    assert message.command_set.CommandField == 0x8001
    assert message.command_set.CommandGroupLength == len(encoded) - 12


class _Recorder:
    def __init__(self) -> None:
        self.events: list = []
        self.data = bytearray()

    def on_pdu(self, pdu_type: int, pdu: bytes) -> None:
        self.events.append(("pdu", pdu_type, pdu))

    def on_p_data(self) -> bool:
        self.events.append(("p-data",))
        return True

    def on_fragment(self, context_id: int, control: int) -> Callable[[memoryview], None]:
        self.events.append(("fragment", context_id, control))
        return self._fragment_data

    def _fragment_data(self, data: memoryview) -> None:
        self.data += data

    def on_fragment_end(self) -> bool:
        self.events.append(("end", bytes(self.data)))
        self.data.clear()
        return False

    def on_invalid(self, reason: int, message: str) -> None:
        self.events.append(("invalid", reason))


STREAM = (
    b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"
    + c_store(bytes(range(256)) * 40, "1.2.3", message_id=1, max_pdu=1000)
    + c_echo(message_id=2)
    + b"\x07\x00\x00\x00\x00\x04\x00\x00\x02\x01"
)


def _events(chunks: list[bytes]) -> list:
    sink = _Recorder()
    framer = Framer(sink, 16384)
    for chunk in chunks:
        assert framer.feed(memoryview(chunk)) == len(chunk)
    return sink.events


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(STREAM)), max_size=30))
def test_the_framer_sees_the_same_pdus_however_the_stream_is_cut(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert _events(chunks) == _events([STREAM])


def test_the_framer_refuses_a_pdu_over_the_limit_before_reading_it() -> None:
    sink = _Recorder()
    framer = Framer(sink, 16384)
    header = struct.pack(">BxI", 0x04, 1 << 30)  # declares a gigabyte
    assert framer.feed(memoryview(header + bytes(100))) == len(header)  # not a byte of its body
    assert sink.events == [("invalid", 6)]
    assert framer.broken
