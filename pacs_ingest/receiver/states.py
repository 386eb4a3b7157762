"""The DICOM upper layer's state machine as PS3.8 9.2 states it: states, events, actions, and
Table 9-10, the transition table.

The table is the standard's, complete, so it can be checked line by line against PS3.8. A
receiver is always the association-acceptor, so the rows of the requestor's own connection set-up
(Evt1 and Evt2, Sta4 and Sta5, actions AE-1 to AE-4) never fire here; every other transition can.
`receiver.association` performs the actions.
"""

import enum


class State(enum.Enum):
    """PS3.8 Table 9-1."""

    __hash__ = object.__hash__  # members are singletons; the default hashes their name

    Sta1 = "Idle"
    Sta2 = "Transport connection open (Awaiting A-ASSOCIATE-RQ PDU)"
    Sta3 = "Awaiting local A-ASSOCIATE response primitive"
    Sta4 = "Awaiting transport connection opening to complete"
    Sta5 = "Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU"
    Sta6 = "Association established and ready for data transfer"
    Sta7 = "Awaiting A-RELEASE-RP PDU"
    Sta8 = "Awaiting local A-RELEASE response primitive"
    Sta9 = "Release collision requestor side; awaiting A-RELEASE response primitive"
    Sta10 = "Release collision acceptor side; awaiting A-RELEASE-RP PDU"
    Sta11 = "Release collision requestor side; awaiting A-RELEASE-RP PDU"
    Sta12 = "Release collision acceptor side; awaiting A-RELEASE response primitive"
    Sta13 = "Awaiting Transport Connection Close Indication"


class Event(enum.Enum):
    """PS3.8 Table 9-2."""

    __hash__ = object.__hash__  # members are singletons; the default hashes their name

    Evt1 = "A-ASSOCIATE request (local user)"
    Evt2 = "Transport connect confirmation (local transport service)"
    Evt3 = "A-ASSOCIATE-AC PDU (received on transport connection)"
    Evt4 = "A-ASSOCIATE-RJ PDU (received on transport connection)"
    Evt5 = "Transport connection indication (local transport service)"
    Evt6 = "A-ASSOCIATE-RQ PDU (received on transport connection)"
    Evt7 = "A-ASSOCIATE response primitive (accept)"
    Evt8 = "A-ASSOCIATE response primitive (reject)"
    Evt9 = "P-DATA request primitive"
    Evt10 = "P-DATA-TF PDU"
    Evt11 = "A-RELEASE request primitive"
    Evt12 = "A-RELEASE-RQ PDU (received on transport connection)"
    Evt13 = "A-RELEASE-RP PDU (received on transport connection)"
    Evt14 = "A-RELEASE response primitive"
    Evt15 = "A-ABORT request primitive"
    Evt16 = "A-ABORT PDU (received on transport connection)"
    Evt17 = "Transport connection closed indication (local transport service)"
    Evt18 = "ARTIM timer expired (Association reject/release timer)"
    Evt19 = "Unrecognized or invalid PDU received"


class Action(enum.Enum):
    """PS3.8 Tables 9-6 to 9-9: each action's name, what it does, and the state it leads to
    (None: it depends)."""

    __hash__ = object.__hash__

    AE_1 = (
        "AE-1",
        "Issue TRANSPORT CONNECT request primitive to local transport service",
        State.Sta4,
    )
    AE_2 = ("AE-2", "Send A-ASSOCIATE-RQ-PDU", State.Sta5)
    AE_3 = ("AE-3", "Issue A-ASSOCIATE confirmation (accept) primitive", State.Sta6)
    AE_4 = (
        "AE-4",
        "Issue A-ASSOCIATE confirmation (reject) primitive and close transport",
        State.Sta1,
    )
    AE_5 = ("AE-5", "Issue Transport connection response primitive; start ARTIM timer", State.Sta2)
    AE_6 = ("AE-6", "Stop ARTIM timer; issue A-ASSOCIATE indication, or send A-ASSOCIATE-RJ", None)
    AE_7 = ("AE-7", "Send A-ASSOCIATE-AC PDU", State.Sta6)
    AE_8 = ("AE-8", "Send A-ASSOCIATE-RJ PDU and start ARTIM timer", State.Sta13)
    DT_1 = ("DT-1", "Send P-DATA-TF PDU", State.Sta6)
    DT_2 = ("DT-2", "Send P-DATA indication primitive", State.Sta6)
    AR_1 = ("AR-1", "Send A-RELEASE-RQ PDU", State.Sta7)
    AR_2 = ("AR-2", "Issue A-RELEASE indication primitive", State.Sta8)
    AR_3 = (
        "AR-3",
        "Issue A-RELEASE confirmation primitive, and close transport connection",
        State.Sta1,
    )
    AR_4 = ("AR-4", "Issue A-RELEASE-RP PDU and start ARTIM timer", State.Sta13)
    AR_5 = ("AR-5", "Stop ARTIM timer", State.Sta1)
    AR_6 = ("AR-6", "Issue P-DATA indication", State.Sta7)
    AR_7 = ("AR-7", "Issue P-DATA-TF PDU", State.Sta8)
    AR_8 = ("AR-8", "Issue A-RELEASE indication (release collision)", None)
    AR_9 = ("AR-9", "Send A-RELEASE-RP PDU", State.Sta11)
    AR_10 = ("AR-10", "Issue A-RELEASE confirmation primitive", State.Sta12)
    AA_1 = (
        "AA-1",
        "Send A-ABORT PDU (service-user source) and start (or restart) ARTIM timer",
        State.Sta13,
    )
    AA_2 = ("AA-2", "Stop ARTIM timer if running. Close transport connection", State.Sta1)
    AA_3 = (
        "AA-3",
        "Issue A-ABORT or A-P-ABORT indication and close transport connection",
        State.Sta1,
    )
    AA_4 = ("AA-4", "Issue A-P-ABORT indication primitive", State.Sta1)
    AA_5 = ("AA-5", "Stop ARTIM timer", State.Sta1)
    AA_6 = ("AA-6", "Ignore PDU", State.Sta13)
    AA_7 = ("AA-7", "Send A-ABORT PDU", State.Sta13)
    AA_8 = (
        "AA-8",
        "Send A-ABORT PDU (service-provider source), A-P-ABORT indication, ARTIM",
        State.Sta13,
    )

    @property
    def next_state(self) -> State | None:
        return self.value[2]

    @property
    def method(self) -> str:
        """The name of the method that performs this action ("_ae_6")."""
        return "_" + self.name.lower()


def _row(event: Event, *cells: tuple[str, Action]) -> dict[tuple[Event, State], Action]:
    return {(event, State[state]): action for state, action in cells}


_DATA_OR_CONTROL_PDU = (
    ("Sta2", Action.AA_1),
    ("Sta3", Action.AA_8),
    ("Sta5", Action.AA_8),
    ("Sta6", Action.AA_8),
    ("Sta7", Action.AA_8),
    ("Sta8", Action.AA_8),
    ("Sta9", Action.AA_8),
    ("Sta10", Action.AA_8),
    ("Sta11", Action.AA_8),
    ("Sta12", Action.AA_8),
    ("Sta13", Action.AA_6),
)


def _replacing(cells: tuple[tuple[str, Action], ...], **changes: Action) -> tuple:
    return tuple((state, changes.get(state, action)) for state, action in cells)


_ESTABLISHED = ("Sta3", "Sta5", "Sta6", "Sta7", "Sta8", "Sta9", "Sta10", "Sta11", "Sta12")

# PS3.8 Table 9-10: (event, state) -> action. A pair that is absent cannot happen.
TRANSITIONS: dict[tuple[Event, State], Action] = {
    **_row(Event.Evt1, ("Sta1", Action.AE_1)),
    **_row(Event.Evt2, ("Sta4", Action.AE_2)),
    **_row(Event.Evt3, *_replacing(_DATA_OR_CONTROL_PDU, Sta5=Action.AE_3)),
    **_row(Event.Evt4, *_replacing(_DATA_OR_CONTROL_PDU, Sta5=Action.AE_4)),
    **_row(Event.Evt5, ("Sta1", Action.AE_5)),
    **_row(Event.Evt6, *_replacing(_DATA_OR_CONTROL_PDU, Sta2=Action.AE_6, Sta13=Action.AA_7)),
    **_row(Event.Evt7, ("Sta3", Action.AE_7)),
    **_row(Event.Evt8, ("Sta3", Action.AE_8)),
    **_row(Event.Evt9, ("Sta6", Action.DT_1), ("Sta8", Action.AR_7)),
    **_row(Event.Evt10, *_replacing(_DATA_OR_CONTROL_PDU, Sta6=Action.DT_2, Sta7=Action.AR_6)),
    **_row(Event.Evt11, ("Sta6", Action.AR_1)),
    **_row(Event.Evt12, *_replacing(_DATA_OR_CONTROL_PDU, Sta6=Action.AR_2, Sta7=Action.AR_8)),
    **_row(
        Event.Evt13,
        *_replacing(_DATA_OR_CONTROL_PDU, Sta7=Action.AR_3, Sta10=Action.AR_10, Sta11=Action.AR_3),
    ),
    **_row(Event.Evt14, ("Sta8", Action.AR_4), ("Sta9", Action.AR_9), ("Sta12", Action.AR_4)),
    **_row(
        Event.Evt15,
        ("Sta3", Action.AA_1),
        ("Sta4", Action.AA_2),
        *((state, Action.AA_1) for state in _ESTABLISHED[1:]),
    ),
    **_row(
        Event.Evt16,
        ("Sta2", Action.AA_2),
        *((state, Action.AA_3) for state in _ESTABLISHED),
        ("Sta13", Action.AA_2),
    ),
    **_row(
        Event.Evt17,
        ("Sta2", Action.AA_5),
        ("Sta3", Action.AA_4),
        ("Sta4", Action.AA_4),
        *((state, Action.AA_4) for state in _ESTABLISHED[1:]),
        ("Sta13", Action.AR_5),
    ),
    **_row(Event.Evt18, ("Sta2", Action.AA_2), ("Sta13", Action.AA_2)),
    **_row(Event.Evt19, *_replacing(_DATA_OR_CONTROL_PDU, Sta13=Action.AA_7)),
}


def transition(event: Event, state: State) -> Action:
    """The action PS3.8 prescribes for `event` in `state`.

    Raises KeyError for a pair the table leaves empty: those cannot happen to an acceptor that
    follows the table, so reaching one is a bug, not a peer's fault.
    """
    return TRANSITIONS[(event, state)]
