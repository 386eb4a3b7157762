"""The reference's negotiation rules as pure functions: facts of an RQ in, the answer out."""

from pacs_ingest.receiver.negotiation import (
    AssociateRequest,
    AssociationPolicy,
    CommonExtended,
    ProposedContext,
    Rejection,
    async_window,
    choose_transfer_syntax,
    find_capability,
    identity_response,
    negotiate,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
PRIVATE = "1.2.3.4"
GENERAL = "1.2.3"
STORAGE = "1.2.840.10008.4.2"


def request(**facts: object) -> AssociateRequest:
    base = {
        "application_context": "1.2.840.10008.3.1.1.1",
        "called_ae_title": "SCP",
        "calling_ae_title": "SCU",
        "contexts": (),
    }
    return AssociateRequest(**{**base, **facts})  # type: ignore[arg-type]


def policy(**rules: object) -> AssociationPolicy:
    base = {"ae_title": "SCP", "accept": frozenset(), "capabilities": {CT: None}}
    return AssociationPolicy(**{**base, **rules})  # type: ignore[arg-type]


def test_a_related_general_class_is_looked_up_before_the_service_class() -> None:
    rq = request(common_extended={PRIVATE: CommonExtended(STORAGE, (GENERAL,))})
    assert find_capability(PRIVATE, rq, {GENERAL: None, STORAGE: None}) == GENERAL
    assert find_capability(PRIVATE, rq, {STORAGE: None, "*": None}) == STORAGE
    assert find_capability(PRIVATE, request(), {STORAGE: None, "*": None}) == "*"
    assert find_capability(PRIVATE, request(), {STORAGE: None}) is None


def test_the_transfer_syntax_is_the_first_proposed_one_accepted() -> None:
    accepted = frozenset({"b", "c"})
    assert choose_transfer_syntax(("a", "c", "b"), accepted) == "c"
    assert choose_transfer_syntax(("a",), accepted) is None
    assert choose_transfer_syntax(("a",), None) == "a"


def test_ae_titles_are_trimmed_before_comparison() -> None:
    answer = negotiate(request(called_ae_title="  SCP\x00"), policy())
    assert not isinstance(answer, Rejection)


def test_without_an_async_item_in_the_rq_the_ac_has_none() -> None:
    assert async_window(request(), policy(max_ops_invoked=5)) is None
    assert async_window(request(async_ops=(0, 0)), policy()) == (0, 0)
    assert async_window(request(async_ops=(0, 4)), policy(max_ops_invoked=2)) == (0, 2)


def test_a_role_item_for_a_class_we_do_not_serve_rejects_its_context() -> None:
    rq = request(
        contexts=(ProposedContext(1, PRIVATE, ("1.2.840.10008.1.2",)),),
        roles={PRIVATE: (True, False)},
    )
    answer = negotiate(rq, policy())
    assert not isinstance(answer, Rejection)
    assert [
        (c.result, r.scu, r.scp) for c, r in zip(answer.contexts, answer.roles, strict=True)
    ] == [(3, False, False)]


def test_a_positive_identity_response_is_empty_for_usernames_else_the_primary_field() -> None:
    assert identity_response(1, True, b"alice") == b""
    assert identity_response(2, True, b"alice") == b""
    assert identity_response(3, True, b"ticket") == b"ticket"
    assert identity_response(3, False, b"ticket") is None
