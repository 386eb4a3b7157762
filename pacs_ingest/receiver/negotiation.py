"""Association negotiation as dcm4che's storescp does it (spec §3.1-§3.4), as pure functions.

Input: the facts of an A-ASSOCIATE-RQ and the receiver's policy. Output: either the
A-ASSOCIATE-RJ triple, or what the A-ASSOCIATE-AC says (per-context results, SCP/SCU role items,
the asynchronous operations window). `receiver/association.py` sends what it decides.

The reference's order of checks: protocol version (the upper layer's own, in AE-6, with
RJ(1, 2, 2)), application context, Called AE title, Calling AE title.
An association is accepted even when no presentation context is.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from pacs_ingest.receiver.sop_classes import WILDCARD, Capabilities, TransferSyntaxes
from pacs_ingest.shared.javalang import trim

DICOM_APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"

# A-ASSOCIATE-RJ (PS3.8 9.3.4): result, source, reason/diagnostic
REJECTED_PERMANENT = 1
REJECTED_TRANSIENT = 2
SOURCE_SERVICE_USER = 1
SOURCE_SERVICE_PROVIDER_PRESENTATION = 3
TEMPORARY_CONGESTION = 1
APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2
CALLING_AE_TITLE_NOT_RECOGNIZED = 3
CALLED_AE_TITLE_NOT_RECOGNIZED = 7

# The metrics' names of the A-ASSOCIATE-RJ (source, reason) pairs we send; (2, 2) is the ACSE's
# "protocol version not supported" (receiver.association).
_REJECTION_LABELS = {
    (SOURCE_SERVICE_USER, 1): "no-reason-given",
    (SOURCE_SERVICE_USER, APPLICATION_CONTEXT_NAME_NOT_SUPPORTED): "application-context-name",
    (SOURCE_SERVICE_USER, CALLING_AE_TITLE_NOT_RECOGNIZED): "calling-ae-title-not-recognized",
    (SOURCE_SERVICE_USER, CALLED_AE_TITLE_NOT_RECOGNIZED): "called-ae-title-not-recognized",
    (2, 2): "protocol-version-not-supported",
    (SOURCE_SERVICE_PROVIDER_PRESENTATION, TEMPORARY_CONGESTION): "temporary-congestion",
    (SOURCE_SERVICE_PROVIDER_PRESENTATION, 2): "local-limit-exceeded",
}


def rejection_label(source: int, reason: int) -> str:
    return _REJECTION_LABELS.get((source, reason), f"source-{source}-reason-{reason}")


# Presentation context results (PS3.8 9.3.3.2)
ACCEPTANCE = 0
ABSTRACT_SYNTAX_NOT_SUPPORTED = 3
TRANSFER_SYNTAXES_NOT_SUPPORTED = 4

# User Identity types (PS3.7 D.3.3.7) whose positive response is empty
USERNAME = 1
USERNAME_AND_PASSCODE = 2


@dataclass(frozen=True, slots=True)
class ProposedContext:
    context_id: int
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CommonExtended:
    """A SOP Class Common Extended Negotiation item: what a proposed SOP class belongs to."""

    service_class: str
    related_general_sop_classes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AssociateRequest:
    application_context: str
    called_ae_title: str
    calling_ae_title: str
    contexts: tuple[ProposedContext, ...]
    roles: Mapping[str, tuple[bool, bool]] = field(default_factory=dict)  # AS: (SCU, SCP)
    common_extended: Mapping[str, CommonExtended] = field(default_factory=dict)
    async_ops: tuple[int, int] | None = None  # (invoked, performed) if the RQ had the item


@dataclass(frozen=True, slots=True)
class AssociationPolicy:
    ae_title: str | None  # the Called AE title required; None accepts any
    accept: frozenset[str]  # Calling AE titles accepted; empty accepts any
    capabilities: Capabilities
    max_ops_invoked: int = 0  # 0: unlimited
    max_ops_performed: int = 0


@dataclass(frozen=True, slots=True)
class Rejection:
    result: int
    source: int
    reason: int
    why: str


@dataclass(frozen=True, slots=True)
class ContextResult:
    context_id: int
    abstract_syntax: str
    result: int
    transfer_syntax: str  # the accepted one; for a rejected context the first proposed


@dataclass(frozen=True, slots=True)
class RoleReply:
    sop_class_uid: str
    scu: bool
    scp: bool


@dataclass(frozen=True, slots=True)
class Acceptance:
    contexts: tuple[ContextResult, ...]
    roles: tuple[RoleReply, ...]
    async_ops: tuple[int, int] | None  # None: the AC carries no window item (it is 1, 1)

    @property
    def accepted(self) -> tuple[ContextResult, ...]:
        return tuple(cx for cx in self.contexts if cx.result == ACCEPTANCE)


def min_zero_as_max(a: int, b: int) -> int:
    """The smaller of two operation limits, where 0 means unlimited."""
    if a == 0:
        return b
    if b == 0:
        return a
    return min(a, b)


def check(request: AssociateRequest, policy: AssociationPolicy) -> Rejection | None:
    """The A-ASSOCIATE-RJ the reference sends for `request`, in its order of checks; or None."""
    if request.application_context != DICOM_APPLICATION_CONTEXT:
        return Rejection(
            REJECTED_PERMANENT,
            SOURCE_SERVICE_USER,
            APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
            f"application context {request.application_context} is not DICOM's",
        )
    called = trim(request.called_ae_title)
    if policy.ae_title is not None and called != policy.ae_title:
        return Rejection(
            REJECTED_PERMANENT,
            SOURCE_SERVICE_USER,
            CALLED_AE_TITLE_NOT_RECOGNIZED,
            f"Called AE title {called!r} is not {policy.ae_title!r}",
        )
    calling = trim(request.calling_ae_title)
    if policy.accept and calling not in policy.accept:
        return Rejection(
            REJECTED_PERMANENT,
            SOURCE_SERVICE_USER,
            CALLING_AE_TITLE_NOT_RECOGNIZED,
            f"Calling AE title {calling!r} is not in --accept",
        )
    return None


def congested(why: str) -> Rejection:
    """A transient rejection: the sender should try again later (our back-pressure; the
    reference never refuses for load)."""
    return Rejection(
        REJECTED_TRANSIENT, SOURCE_SERVICE_PROVIDER_PRESENTATION, TEMPORARY_CONGESTION, why
    )


def find_capability(
    abstract_syntax: str, request: AssociateRequest, capabilities: Capabilities
) -> str | None:
    """The capability key serving `abstract_syntax`: itself; else, if the RQ relates it to others
    by SOP Class Common Extended Negotiation, each related general SOP class, then its service
    class; else the wildcard (only with --accept-unknown). None when nothing serves it."""
    if abstract_syntax in capabilities:
        return abstract_syntax
    related = request.common_extended.get(abstract_syntax)
    if related is not None:
        for uid in (*related.related_general_sop_classes, related.service_class):
            if uid in capabilities:
                return uid
    return WILDCARD if WILDCARD in capabilities else None


def choose_transfer_syntax(proposed: tuple[str, ...], accepted: TransferSyntaxes) -> str | None:
    """The first proposed transfer syntax the capability accepts: the SCU's order, not ours."""
    for uid in proposed:
        if accepted is None or uid in accepted:
            return uid
    return None


def _negotiate_context(
    proposed: ProposedContext,
    request: AssociateRequest,
    capabilities: Capabilities,
    roles: dict[str, RoleReply],
) -> ContextResult:
    key = find_capability(proposed.abstract_syntax, request, capabilities)
    requested_roles = request.roles.get(proposed.abstract_syntax)
    if requested_roles is not None:
        # We only ever act as SCP: the peer's SCU role is granted when we serve the class, our
        # SCU role never. A context whose SCU role is not granted is of no use: rejected.
        role = roles.setdefault(
            proposed.abstract_syntax,
            RoleReply(proposed.abstract_syntax, requested_roles[0] and key is not None, False),
        )
        if not role.scu:
            key = None
    first = proposed.transfer_syntaxes[0] if proposed.transfer_syntaxes else ""
    if key is None:
        return ContextResult(
            proposed.context_id, proposed.abstract_syntax, ABSTRACT_SYNTAX_NOT_SUPPORTED, first
        )
    chosen = choose_transfer_syntax(proposed.transfer_syntaxes, capabilities[key])
    if chosen is None:
        return ContextResult(
            proposed.context_id, proposed.abstract_syntax, TRANSFER_SYNTAXES_NOT_SUPPORTED, first
        )
    return ContextResult(proposed.context_id, proposed.abstract_syntax, ACCEPTANCE, chosen)


def async_window(request: AssociateRequest, policy: AssociationPolicy) -> tuple[int, int] | None:
    """The AC's (invoked, performed) window; None when it is (1, 1) and so not sent."""
    invoked, performed = request.async_ops or (1, 1)
    window = (
        min_zero_as_max(invoked, policy.max_ops_performed),
        min_zero_as_max(performed, policy.max_ops_invoked),
    )
    return None if window == (1, 1) else window


def negotiate(request: AssociateRequest, policy: AssociationPolicy) -> Rejection | Acceptance:
    """What the reference answers to `request`: the RJ, or the AC's contents."""
    rejection = check(request, policy)
    if rejection is not None:
        return rejection
    roles: dict[str, RoleReply] = {}
    contexts = tuple(
        _negotiate_context(proposed, request, policy.capabilities, roles)
        for proposed in request.contexts
    )
    return Acceptance(contexts, tuple(roles.values()), async_window(request, policy))


def identity_response(
    identity_type: int, positive_response_requested: bool, primary_field: bytes
) -> bytes | None:
    """The User Identity server response: any identity is accepted unchecked; when the RQ asks
    for a positive response it is empty for a username (with or without passcode), otherwise the
    primary field echoed. None: no User Identity item in the AC."""
    if not positive_response_requested:
        return None
    if identity_type in (USERNAME, USERNAME_AND_PASSCODE):
        return b""
    return primary_field
