"""The receiver's association: pynetdicom's, with the reference's rules plugged in.

pynetdicom's acceptor differs from dcm4che's storescp in ways senders notice (order of rejections,
role selection, which transfer syntax wins, SOP Class Common Extended Negotiation, the async
window, which service answers a request, when the socket closes). `ReceiverAssociation` is a
pynetdicom `Association` with four parts replaced, each at the point pynetdicom's own tests use:

* ACSE `_negotiate_as_acceptor`: `receiver.negotiation` decides; we only translate;
* `_serve_request`: `receiver.dispatch` decides which service answers;
* the DIMSE provider's maximum PDU for what we send: min of `--max-pdulen-snd` and the peer's;
* the socket's close: waits `--soclose-delay` after A-ASSOCIATE-RJ, A-RELEASE-RP or A-ABORT.

`receiver/server.py` creates one per accepted connection.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from pynetdicom import evt
from pynetdicom._globals import MODE_ACCEPTOR
from pynetdicom.acse import ACSE
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import N_ACTION, N_DELETE, N_GET, N_SET
from pynetdicom.events import Event
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    AsynchronousOperationsWindowNegotiation,
    SCP_SCU_RoleSelectionNegotiation,
    UserIdentityNegotiation,
)
from pynetdicom.presentation import PresentationContext
from pynetdicom.service_class import StorageServiceClass, VerificationServiceClass
from pynetdicom.transport import AssociationSocket

from receiver import dispatch, negotiation
from receiver.negotiation import (
    Acceptance,
    AssociateRequest,
    AssociationPolicy,
    CommonExtended,
    ProposedContext,
)
from receiver.pacing import IdleTimer, Pacing
from shared import log

_AWAITING_CLOSE = "Sta13"  # PS3.8: we sent A-ASSOCIATE-RJ, A-RELEASE-RP or A-ABORT
_REQUESTED_SOP_CLASS = (N_GET, N_SET, N_ACTION, N_DELETE)  # the rest carry an Affected one


@dataclass(frozen=True, slots=True)
class AssociationRules:
    """What every association of a receiver follows; built once from the settings."""

    policy: AssociationPolicy
    receive_delays: tuple[int, ...] = ()
    response_delays: tuple[int, ...] = ()
    soclose_delay_ms: int = 50
    max_pdulen_snd: int = 16378
    # Why new associations must wait (receiver.pressure), or None.
    refusal: Callable[[], str | None] = lambda: None


def request_facts(assoc: Association) -> AssociateRequest:
    """What `receiver.negotiation` needs to know of the A-ASSOCIATE-RQ pynetdicom received."""
    rq = cast(A_ASSOCIATE, assoc.requestor.primitive)
    return AssociateRequest(
        application_context=str(rq.application_context_name or ""),
        called_ae_title=str(rq.called_ae_title or ""),
        calling_ae_title=str(rq.calling_ae_title or ""),
        contexts=tuple(
            ProposedContext(
                int(cx.context_id or 0),
                str(cx.abstract_syntax or ""),
                tuple(str(ts) for ts in cx.transfer_syntax),
            )
            for cx in rq.presentation_context_definition_list
        ),
        roles={
            str(uid): (bool(item.scu_role), bool(item.scp_role))
            for uid, item in assoc.requestor.role_selection.items()
        },
        common_extended={
            str(uid): CommonExtended(
                str(item.service_class_uid or ""),
                tuple(str(related) for related in item.related_general_sop_class_identification),
            )
            for uid, item in assoc.requestor.sop_class_common_extended.items()
        },
        async_ops=assoc.requestor.asynchronous_operations,
    )


def _context(result: negotiation.ContextResult) -> PresentationContext:
    context = PresentationContext()
    context.context_id = result.context_id
    context.abstract_syntax = result.abstract_syntax
    context.transfer_syntax = [result.transfer_syntax] if result.transfer_syntax else []
    context.result = result.result
    context._as_scu = False
    context._as_scp = result.result == negotiation.ACCEPTANCE
    return context


class _PolicyACSE(ACSE):
    def _negotiate_as_acceptor(self) -> None:
        assoc = cast(ReceiverAssociation, self.assoc)
        self.requestor.ae_title = cast(A_ASSOCIATE, self.requestor.primitive).calling_ae_title
        facts = request_facts(assoc)
        answer = negotiation.negotiate(facts, assoc.rules.policy)
        if isinstance(answer, negotiation.Acceptance) and (why := assoc.rules.refusal()):
            answer = negotiation.congested(why)
        peer = self.requestor.address
        if isinstance(answer, negotiation.Rejection):
            log.warning(
                "association.rejected",
                result=answer.result,
                source=answer.source,
                reason=answer.reason,
                why=answer.why,
                calling_ae=facts.calling_ae_title,
                called_ae=facts.called_ae_title,
                peer=peer,
            )
            self.send_reject(answer.result, answer.source, answer.reason)
            evt.trigger(assoc, evt.EVT_REJECTED, {})
            assoc.kill()
            return
        self._accept(answer)
        log.debug(
            "association.accepted",
            calling_ae=facts.calling_ae_title,
            contexts=len(answer.contexts),
            accepted=len(answer.accepted),
            async_ops=answer.async_ops,
            peer=peer,
        )

    def _accept(self, answer: Acceptance) -> None:
        assoc = self.assoc
        contexts = [_context(result) for result in answer.contexts]
        accepted = [cx for cx in contexts if cx.result == negotiation.ACCEPTANCE]
        assoc._accepted_cx = {cast(int, cx.context_id): cx for cx in accepted}
        assoc._rejected_cx = [cx for cx in contexts if cx not in accepted]
        for role in answer.roles:
            if not (role.scu or role.scp):
                continue  # pynetdicom cannot encode a reply granting neither: context rejected
            item = SCP_SCU_RoleSelectionNegotiation()
            item.sop_class_uid = role.sop_class_uid
            item.scu_role, item.scp_role = role.scu, role.scp
            self.acceptor.add_negotiation_item(item)
        if answer.async_ops is not None:
            window = AsynchronousOperationsWindowNegotiation()
            window.maximum_number_operations_invoked = answer.async_ops[0]
            window.maximum_number_operations_performed = answer.async_ops[1]
            self.acceptor.add_negotiation_item(window)
        identity = self.requestor.user_identity
        if identity is not None:
            response = negotiation.identity_response(
                cast(int, identity.user_identity_type),
                identity.positive_response_requested,
                identity.primary_field or b"",
            )
            if response is not None:
                reply = UserIdentityNegotiation()
                reply.server_response = response
                self.acceptor.add_negotiation_item(reply)
        self.send_accept()
        evt.trigger(assoc, evt.EVT_ACCEPTED, {})
        assoc.is_established = True
        evt.trigger(assoc, evt.EVT_ESTABLISHED, {})


class _CappedDIMSE(DIMSEServiceProvider):
    """Fragments what we send at `--max-pdulen-snd` when the peer accepts more (0: no limit)."""

    def __init__(self, assoc: Association, limit: int) -> None:
        super().__init__(assoc)
        self._limit = limit

    @property
    def maximum_pdu_size(self) -> int:
        peer = cast(int, self.assoc.requestor.maximum_length or 0)
        return negotiation.min_zero_as_max(peer, self._limit)


class LingeringSocket(AssociationSocket):
    """Closes `linger_s` seconds after our last A-ASSOCIATE-RJ, A-RELEASE-RP or A-ABORT, as the
    reference's --soclose-delay; pynetdicom would close at once."""

    def __init__(self, assoc: Association, client_socket: Any, linger_s: float) -> None:
        super().__init__(assoc, client_socket=client_socket)
        self._linger_s = linger_s

    def close(self) -> None:
        state = self.assoc.dul.state_machine.current_state
        if self.socket is not None and state == _AWAITING_CLOSE and self._linger_s > 0:
            time.sleep(self._linger_s)
        super().close()


class ReceiverAssociation(Association):
    """A pynetdicom acceptor association following `rules` (see the module docstring)."""

    def __init__(self, ae: Any, rules: AssociationRules) -> None:
        super().__init__(ae, MODE_ACCEPTOR)
        self.rules = rules
        self.acse = _PolicyACSE(self)
        self.dimse = _CappedDIMSE(self, rules.max_pdulen_snd)
        idle_timer = IdleTimer(self.network_timeout)
        self.dul._idle_timer = idle_timer
        self.pacing = Pacing(rules.receive_delays, rules.response_delays, idle_timer)
        if self.pacing.watches_pdus:
            self.bind(evt.EVT_PDU_RECV, self.pacing.on_pdu_received)
        self.bind(evt.EVT_CONN_CLOSE, self._end_if_never_requested)

    def _end_if_never_requested(self, event: Event) -> None:
        """The connection closed before an A-ASSOCIATE-RQ came: wake the association thread,
        which otherwise waits for one forever when there is no --request-timeout."""
        if self.requestor.primitive is None and not self.is_established:
            self.dul.to_user_queue.put(None)  # type: ignore[arg-type]

    def _serve_request(self, msg: Any, context_id: int) -> None:
        if self._sent_release:
            return
        if getattr(msg, "MessageIDBeingRespondedTo", None) is not None:
            log.warning("dimse.unexpected_response", peer=self.requestor.address)
            return  # we sent no request: nothing to do with a response
        context = self._accepted_cx.get(context_id)
        if context is None:
            log.warning("dimse.unknown_context", context_id=context_id, peer=self.requestor.address)
            self.abort()
            return
        command = type(msg).__name__.replace("_", "-")
        requested = isinstance(msg, _REQUESTED_SOP_CLASS)
        sop_class = getattr(msg, "RequestedSOPClassUID" if requested else "AffectedSOPClassUID")
        route = dispatch.route(command, str(sop_class) if sop_class else None)
        try:
            self.dimse.cancel_req = {}
            self._is_paused = True
            if route is dispatch.Service.STORAGE:
                StorageServiceClass(self).SCP(msg, context)
            elif route is dispatch.Service.VERIFICATION:
                VerificationServiceClass(self).SCP(msg, context)
            else:
                self._refuse(msg, context_id, command, cast(dispatch.Refusal, route))
            self._is_paused = False
        except Exception as exc:
            log.error("dimse.failed", command=command, error=repr(exc), peer=self.requestor.address)
            self.abort()
        finally:
            self.pacing.request_answered()

    def _refuse(self, msg: Any, context_id: int, command: str, refusal: dispatch.Refusal) -> None:
        """Answer a request no service of ours takes: status and Error Comment, no UIDs."""
        rsp = type(msg)()
        rsp.MessageIDBeingRespondedTo = msg.MessageID or 0
        rsp.Status = refusal.status
        rsp.ErrorComment = refusal.comment[: dispatch.ERROR_COMMENT_MAX]
        self.dimse.send_msg(rsp, context_id)
        log.warning(
            "dimse.refused",
            command=command,
            status=f"{refusal.status:04X}H",
            comment=refusal.comment,
            calling_ae=self.requestor.ae_title,
        )
