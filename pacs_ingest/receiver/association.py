"""One association, as the acceptor: the PS3.8 upper layer on an asyncio transport.

Bytes from the transport go through `receiver.framing`; every PDU becomes the event PS3.8 names,
and `receiver.states` says which action follows. The actions are the methods named after them
(`_ae_6`, `_dt_2`, `_aa_8`, ...). The ARTIM timer runs while a connection waits for its
A-ASSOCIATE-RQ (--request-timeout) and, in Sta13, for the peer to close (--soclose-delay, after
which we close). Once established, PDV fragments go to the association's `ServiceUser`.

A-ABORT source and reason, as PS3.8 9.3.8 gives them: an unknown PDU type is reason 1
(unrecognized PDU), a PDU this state does not expect reason 2 (unexpected PDU), a length that
disagrees with what encloses it, a PDU over the maximum we advertised, or a PDV on a context we did
not accept reason 6 (invalid parameter value), all with the service-provider source; what the
DIMSE layer cannot interpret (and idle or shutdown aborts) goes out with the service-user source.
"""

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pacs_ingest.receiver import framing, negotiation, pdu
from pacs_ingest.receiver.associate_pdu import Acceptor, AssociateRQ, PduError, decode_rq, encode_ac
from pacs_ingest.receiver.service import ServiceUser, Storage
from pacs_ingest.receiver.states import TRANSITIONS, Action, Event, State, transition
from pacs_ingest.receiver.store import Origin
from pacs_ingest.shared import log
from pacs_ingest.shared.javalang import trim
from pacs_ingest.shared.metrics import (
    ASSOCIATIONS_ABORTED,
    ASSOCIATIONS_ACCEPTED,
    ASSOCIATIONS_REJECTED,
    ae_label,
)

# A-ASSOCIATE-RJ reasons of ours (PS3.8 9.3.4): the protocol version, and too many associations.
SOURCE_SERVICE_PROVIDER_ACSE = 2
PROTOCOL_VERSION_NOT_SUPPORTED = 2
LOCAL_LIMIT_EXCEEDED = 2

# How an established association ended without a release, by who ended it (the metric's label).
_ABORTED_BY = {"aborted": "receiver", "aborted_by_peer": "peer", "lost": "lost"}


@dataclass(frozen=True, slots=True)
class AssociationRules:
    """What every association of a receiver process follows; built once from the settings."""

    policy: negotiation.AssociationPolicy
    acceptor: Acceptor
    request_timeout_s: float | None  # ARTIM while awaiting the A-ASSOCIATE-RQ
    idle_timeout_s: float | None
    soclose_delay_s: float
    max_pdulen_snd: int
    max_associations: int
    # Why new associations must wait (receiver.pressure), or None.
    refusal: Callable[[], str | None] = lambda: None


@dataclass(slots=True)
class Registry:
    """The associations of one receiver process, and what they share."""

    storage: Storage
    live: set["Association"] = field(default_factory=set)
    established: int = 0


# Events our own service user raises; by the time one runs, the peer may have ended the
# association, and then it is dropped. Any other event without a transition is a bug.
_LOCAL_EVENTS = frozenset(
    {Event.Evt7, Event.Evt8, Event.Evt9, Event.Evt11, Event.Evt14, Event.Evt15}
)
_ACTIONS = {action: (action.method, action.next_state) for action in Action}
_PDU_EVENTS = {
    pdu.A_ASSOCIATE_AC: (Event.Evt3, "A-ASSOCIATE-AC"),
    pdu.A_ASSOCIATE_RJ: (Event.Evt4, "A-ASSOCIATE-RJ"),
    pdu.A_RELEASE_RQ: (Event.Evt12, "A-RELEASE-RQ"),
    pdu.A_RELEASE_RP: (Event.Evt13, "A-RELEASE-RP"),
    pdu.A_ABORT: (Event.Evt16, "A-ABORT"),
}


class Association(asyncio.Protocol):
    def __init__(self, rules: AssociationRules, registry: Registry) -> None:
        self.rules = rules
        self._registry = registry
        self.state = State.Sta1
        self.service: ServiceUser | None = None
        self.peer = ""
        # Kept: asyncio.get_running_loop() makes a getpid system call (timers restart per store).
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._framer = framing.Framer(self, rules.acceptor.maximum_length)
        self._queue: deque[tuple[Event, tuple[object, ...]]] = deque()
        self._dispatching = False
        self._received: AssociateRQ | None = None  # the A-ASSOCIATE-RQ of Evt6
        self._problem: tuple[int, str] | None = None  # A-ABORT reason of the PDU event at hand
        self._contexts: dict[int, str] = {}  # accepted context ID -> transfer syntax
        self._max_fragment = 0
        self._artim: asyncio.TimerHandle | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._holds: set[str] = set()
        self._stash: memoryview | None = None  # bytes read but held back
        self._release_wanted = False
        self._started = time.monotonic()
        self._last_received = self._started  # when the peer last sent a byte
        self._ending = "closed"  # how the association ended, for the log line
        self._titles: dict[str, str] = {}  # calling and called AE, for the closing log line

    # -- transport --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        self._registry.live.add(self)
        self._event(Event.Evt5)

    def data_received(self, data: bytes) -> None:
        self._last_received = time.monotonic()
        if self._stash is not None:  # held: keep it for when reading resumes
            self._stash = memoryview(bytes(self._stash) + data)
            return
        self._feed(memoryview(data))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state is not State.Sta1:
            self._problem = None
            self._event(Event.Evt17)

    def pause_writing(self) -> None:
        self.hold("writing")  # the peer does not read its responses: stop reading its requests

    def resume_writing(self) -> None:
        self.resume("writing")

    def _feed(self, data: memoryview) -> None:
        taken = self._framer.feed(data)
        if self._framer.broken:
            return
        if taken < len(data):
            self._stash = data[taken:]
        if self._holds and self._transport is not None:
            self._transport.pause_reading()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    # -- the framer's sink --------------------------------------------------------------------

    def on_pdu(self, pdu_type: int, raw: bytes) -> None:
        if pdu_type == pdu.A_ASSOCIATE_RQ:
            try:
                self._received = decode_rq(raw)
            except PduError as exc:
                self.on_invalid(exc.reason, f"A-ASSOCIATE-RQ: {exc}")
                return
            self._problem = (pdu.UNEXPECTED_PDU, "A-ASSOCIATE-RQ")
            self._event(Event.Evt6)
        else:
            event, name = _PDU_EVENTS[pdu_type]
            self._problem = (pdu.UNEXPECTED_PDU, name)
            self._event(event)

    def on_p_data(self) -> bool:
        if self.state is State.Sta6 and not self._dispatching:
            # Once per PDU of every data set, so the table's entry for it (DT-2, staying in
            # Sta6; test_codecs checks that it is) is taken without the general dispatch.
            self._dt_2()
            return True
        self._problem = (pdu.UNEXPECTED_PDU, "P-DATA-TF")
        self._event(Event.Evt10)
        return self.state in (State.Sta6, State.Sta7) and not self._framer.broken

    def on_fragment(self, context_id: int, control: int) -> Callable[[memoryview], None]:
        if context_id not in self._contexts:
            self.on_invalid(
                pdu.INVALID_PDU_PARAMETER_VALUE,
                f"PDV on presentation context {context_id}, which was not accepted",
            )
        elif self.service is not None:
            return self.service.fragment(context_id, control)
        return framing.drop

    def on_fragment_end(self) -> bool:
        if self.service is not None and not self._framer.broken:
            self.service.fragment_end()
        return bool(self._holds)

    def on_invalid(self, reason: int, message: str) -> None:
        self._problem = (reason, message)
        self._event(Event.Evt19)

    # -- the service user's requests (receiver.service.Link) ---------------------------------

    def send_message(self, context_id: int, command_set: bytes) -> None:
        self._event(Event.Evt9, context_id, command_set)

    def abort(self, why: str) -> None:
        """A-ABORT (service-user source): the DIMSE layer cannot go on, or we give up."""
        if self.state not in (State.Sta1, State.Sta13):
            log.warning(
                "association.abort", why=why, **self._titles, peer=self.peer, **self._counts()
            )
            self._problem = None
            self._framer.stop()
            self._event(Event.Evt15)

    def hold(self, reason: str) -> None:
        self._holds.add(reason)

    def resume(self, reason: str) -> None:
        if reason not in self._holds:
            return
        self._holds.discard(reason)
        if self._holds or self._transport is None:
            return
        self._last_received = time.monotonic()  # the peer's silence while held is ours
        stash, self._stash = self._stash, None
        if stash is not None:
            self._feed(stash)
        if not self._holds and not self._transport.is_closing():
            self._transport.resume_reading()

    def pause(self, seconds: float) -> None:
        """Read nothing for `seconds` (--receive-delay): the sender feels TCP back-pressure."""
        if seconds > 0:
            self.hold("delay")
            self._loop.call_later(seconds, self.resume, "delay")

    def operations_done(self) -> None:
        if self.state is State.Sta8:
            self._event(Event.Evt14)
        elif self.state is State.Sta6 and self._release_wanted:
            self._event(Event.Evt11)
        elif self.state is State.Sta6:
            self._start_idle_timer()

    def request_release(self) -> None:
        """Shutting down: release once no operation is in progress (A-RELEASE-RQ)."""
        self._release_wanted = True
        if self.state is State.Sta6 and self.service is not None and self.service.idle:
            self._event(Event.Evt11)
        elif self.state in (State.Sta2, State.Sta3):  # not an association yet: just close
            self.abort("receiver shutting down")

    # -- the state machine ---------------------------------------------------------------------

    def _event(self, event: Event, *args: object) -> None:
        """Perform the action PS3.8 gives for `event` now. An event raised by an action runs
        once that action has finished and the state has moved on."""
        self._queue.append((event, args))
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._queue:
                event, args = self._queue.popleft()
                if event in _LOCAL_EVENTS and (event, self.state) not in TRANSITIONS:
                    continue
                method, default_next = _ACTIONS[transition(event, self.state)]
                self.state = getattr(self, method)(*args) or default_next
        finally:
            self._dispatching = False

    def _start_artim(self, seconds: float | None) -> None:
        self._stop_artim()
        if seconds is not None:
            self._artim = self._loop.call_later(seconds, self._event, Event.Evt18)

    def _stop_artim(self) -> None:
        if self._artim is not None:
            self._artim.cancel()
            self._artim = None

    def _start_idle_timer(self) -> None:
        self._stop_idle_timer()
        if self.rules.idle_timeout_s is not None:
            self._idle = self._loop.call_later(self.rules.idle_timeout_s, self._idle_timeout)

    def _stop_idle_timer(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_timeout(self) -> None:
        """Abort an association with nothing in progress; or one whose peer, in the middle of
        a message or PDU, has sent nothing for as long (it would hold its slot and part file
        forever). With operations of ours in progress, `operations_done` restarts the timer."""
        self._idle = None
        service, timeout = self.service, self.rules.idle_timeout_s
        assert service is not None and timeout is not None
        if self._framer.mid_pdu or service.mid_message:
            # While we hold reading back (--receive-delay, flow control) the peer cannot send.
            quiet = 0.0 if self._holds else time.monotonic() - self._last_received
            if quiet < timeout:
                self._idle = self._loop.call_later(timeout - quiet, self._idle_timeout)
            else:
                self.abort(f"nothing received for {timeout} s mid-message (--idle-timeout)")
        elif service.idle:
            self.abort(f"idle for {timeout} s (--idle-timeout)")

    def _decide(self, rq: AssociateRQ) -> None:
        """The A-ASSOCIATE response of our service user: accept (Evt7) or reject (Evt8)."""
        answer = negotiation.negotiate(rq.request, self.rules.policy)
        if isinstance(answer, negotiation.Acceptance):
            if self._registry.established >= self.rules.max_associations:
                answer = negotiation.Rejection(
                    negotiation.REJECTED_TRANSIENT,
                    negotiation.SOURCE_SERVICE_PROVIDER_PRESENTATION,
                    LOCAL_LIMIT_EXCEEDED,
                    f"{self.rules.max_associations} associations already (--max-associations)",
                )
            elif why := self.rules.refusal():
                answer = negotiation.congested(why)
        if isinstance(answer, negotiation.Rejection):
            log.warning(
                "association.rejected",
                result=answer.result,
                source=answer.source,
                reason=answer.reason,
                why=answer.why,
                calling_ae=trim(rq.request.calling_ae_title),
                called_ae=trim(rq.request.called_ae_title),
                peer=self.peer,
            )
            ASSOCIATIONS_REJECTED.labels(
                negotiation.rejection_label(answer.source, answer.reason)
            ).inc()
            self._event(Event.Evt8, pdu.a_associate_rj(answer.result, answer.source, answer.reason))
        else:
            self._event(Event.Evt7, rq, answer)

    def _counts(self) -> dict[str, object]:
        service = self.service
        return {
            "objects": service.objects if service else 0,
            "bytes": service.bytes if service else 0,
            "seconds": round(time.monotonic() - self._started, 3),
        }

    def _enter_sta13(self, abort: bytes | None = None) -> None:
        """We sent our last PDU: wait for the peer to close, at most --soclose-delay."""
        if abort is not None:
            self._write(abort)
            self._ending = "aborted"
        self._framer.stop()
        self._stop_idle_timer()
        self._start_artim(self.rules.soclose_delay_s)

    def _closed(self) -> None:
        """Entering Sta1: stop the timers, drop a half-received object, close, log."""
        self._stop_artim()
        self._stop_idle_timer()
        self._framer.stop()
        if self._transport is not None:
            if self._transport.get_write_buffer_size():
                # What the kernel could not take, a peer that reads would have taken long ago:
                # close() would wait for it forever, holding the socket.
                self._transport.abort()
            else:
                self._transport.close()
        self._registry.live.discard(self)
        service = self.service
        if service is None:
            return
        self._registry.established -= 1
        if unfinished := service.close():
            log.warning("store.incomplete", objects=unfinished, peer=self.peer)
        if (by := _ABORTED_BY.get(self._ending)) is not None:
            ASSOCIATIONS_ABORTED.labels(by).inc()
        log.event(f"association.{self._ending}", **self._titles, peer=self.peer, **self._counts())

    def _abort_pdu(self) -> bytes:
        """The A-ABORT for the PDU event at hand: the service provider's, with its reason."""
        reason, message = self._problem or (pdu.REASON_NOT_SPECIFIED, "")
        log.warning(
            "association.invalid_pdu",
            state=self.state.name,
            reason=reason,
            why=message,
            peer=self.peer,
            **self._counts(),
        )
        return pdu.a_abort(pdu.SERVICE_PROVIDER, reason)

    # -- actions (PS3.8 9.2.2), named as the standard names them -------------------------------

    def _ae_5(self) -> None:
        self._start_artim(self.rules.request_timeout_s)

    def _ae_6(self) -> State:
        self._stop_artim()
        rq = self._received
        assert rq is not None
        if not rq.protocol_version & 0x0001:  # the reference checks bit 0 only
            log.warning(
                "association.rejected",
                why=f"protocol version 0x{rq.protocol_version:04X}",
                peer=self.peer,
            )
            ASSOCIATIONS_REJECTED.labels(
                negotiation.rejection_label(
                    SOURCE_SERVICE_PROVIDER_ACSE, PROTOCOL_VERSION_NOT_SUPPORTED
                )
            ).inc()
            self._write(
                pdu.a_associate_rj(
                    negotiation.REJECTED_PERMANENT,
                    SOURCE_SERVICE_PROVIDER_ACSE,
                    PROTOCOL_VERSION_NOT_SUPPORTED,
                )
            )
            self._enter_sta13()
            return State.Sta13
        self._decide(rq)  # runs once we are in Sta3
        return State.Sta3

    def _ae_7(self, rq: AssociateRQ, answer: negotiation.Acceptance) -> None:
        identity = rq.user_identity
        response = (
            negotiation.identity_response(
                identity.identity_type, identity.positive_response_requested, identity.primary_field
            )
            if identity is not None
            else None
        )
        self._write(encode_ac(rq, answer, self.rules.acceptor, response))
        self._contexts = {cx.context_id: cx.transfer_syntax for cx in answer.accepted}
        limit = negotiation.min_zero_as_max(rq.maximum_length, self.rules.max_pdulen_snd)
        self._max_fragment = max(limit - pdu.PDV_HEADER_LENGTH, 1) if limit else 0
        calling = trim(rq.request.calling_ae_title)
        self._titles = {
            "calling_ae": calling,
            "called_ae": trim(rq.request.called_ae_title),
        }
        self.service = ServiceUser(
            self,
            self._registry.storage,
            self._contexts,
            Origin(rq.implementation_class_uid, rq.implementation_version_name, calling),
            self.peer,
        )
        self._registry.established += 1
        ASSOCIATIONS_ACCEPTED.labels(ae_label(calling)).inc()
        log.event(
            "association.accepted",
            **self._titles,
            peer=self.peer,
            contexts=len(answer.contexts),
            accepted=len(answer.accepted),
            async_ops=answer.async_ops,
        )
        if self._release_wanted:
            self._event(Event.Evt11)
        else:
            self._start_idle_timer()

    def _ae_8(self, rj: bytes) -> None:
        self._write(rj)
        self._enter_sta13()

    def _dt_1(self, context_id: int, command_set: bytes) -> None:
        self._write(
            pdu.p_data_tf(context_id, command_set, command=True, max_fragment=self._max_fragment)
        )

    def _dt_2(self) -> None:
        if self._idle is None:  # a message is arriving: the timer now watches for a stall
            self._start_idle_timer()

    def _ar_1(self) -> None:
        assert self.service is not None
        self.service.answering = False  # Sta7 has no P-DATA request: nothing more is answered
        self._stop_idle_timer()
        self._ending = "released"
        self._write(pdu.a_release_rq())

    def _ar_2(self) -> None:
        self._stop_idle_timer()
        self._ending = "released"
        service = self.service
        assert service is not None
        if service.mid_message:
            # The reference aborts a release that arrives in the middle of a message.
            self.abort("A-RELEASE-RQ in the middle of a message")
        elif service.idle:
            self._event(Event.Evt14)
        # else: Evt14 once the operations in progress are answered (operations_done)

    def _ar_3(self) -> None:
        self._closed()

    def _ar_4(self) -> None:
        self._write(pdu.a_release_rp())
        self._enter_sta13()

    def _ar_5(self) -> None:
        self._closed()

    def _ar_6(self) -> None:
        """P-DATA while our A-RELEASE-RQ is out: read (the service user answers nothing)."""

    def _ar_7(self, context_id: int, command_set: bytes) -> None:
        self._dt_1(context_id, command_set)

    def _ar_8(self) -> State:
        """Release collision: we are the acceptor, so our A-RELEASE-RP waits for theirs."""
        return State.Sta10

    def _ar_10(self) -> None:
        self._event(Event.Evt14)

    def _aa_1(self) -> None:
        if self._problem is None:  # our own A-ABORT request
            self._enter_sta13(pdu.a_abort(pdu.SERVICE_USER, pdu.REASON_NOT_SPECIFIED))
        else:  # a bad or unexpected PDU before the association was established
            self._enter_sta13(self._abort_pdu())

    def _aa_2(self) -> None:
        self._closed()

    def _aa_3(self) -> None:
        self._ending = "aborted_by_peer"
        self._closed()

    def _aa_4(self) -> None:
        if self._ending == "closed":
            self._ending = "lost"  # the connection closed under an association
        self._closed()

    def _aa_5(self) -> None:
        self._closed()

    def _aa_6(self) -> None:
        """A PDU after our last one: ignored."""

    def _aa_7(self) -> None:
        self._write(self._abort_pdu())

    def _aa_8(self) -> None:
        self._enter_sta13(self._abort_pdu())
