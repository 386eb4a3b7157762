"""Association rules as senders see them: who is rejected and why, what the A-ASSOCIATE-AC says,
which contexts and transfer syntaxes are accepted, and what non-storage requests are answered."""

import pytest
from pydicom.dataset import Dataset
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import (
    AsynchronousOperationsWindowNegotiation,
    SCP_SCU_RoleSelectionNegotiation,
    SOPClassCommonExtendedNegotiation,
    UserIdentityNegotiation,
)
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep,
    PatientRootQueryRetrieveInformationModelFind,
)

from tests.receivers import (
    CT_IMAGE_STORAGE,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    JPEG_BASELINE,
    VERIFICATION,
    Receiver,
    Receivers,
    associate,
    dcmtk,
    exchange,
    raw_request,
    rejection,
    send_raw,
)

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
GENOZIP_STORAGE = "1.2.40.0.13.1.5.1.4.1.1.104.1"
PRIVATE_CLASS = "1.2.826.0.1.3680043.2.1125.99.1"
STORAGE_SERVICE_CLASS = "1.2.840.10008.4.2"
ACCEPTANCE, ABSTRACT_SYNTAX_NOT_SUPPORTED, TRANSFER_SYNTAXES_NOT_SUPPORTED = 0, 3, 4


@pytest.fixture(scope="module")
def default(receivers: Receivers) -> Receiver:
    """A receiver with nothing but -b INGEST:<port>."""
    return receivers.start()


def results(assoc) -> dict[int, tuple[int, str]]:
    """Context ID: (result, transfer syntax) of the A-ASSOCIATE-AC."""
    contexts = assoc.accepted_contexts + assoc.rejected_contexts
    return {cx.context_id: (cx.result, cx.transfer_syntax[0]) for cx in contexts}


class TestRejections:
    def test_a_wrong_called_ae_title_is_rejected_permanently_by_the_service_user(
        self, default: Receiver
    ) -> None:
        run = dcmtk("echoscu", "-aec", "SOMEONE", "127.0.0.1", str(default.port))
        assert run.returncode != 0
        assert rejection(run.stdout + run.stderr) == (
            "Rejected Permanent",
            "Service User",
            "Called AE Title Not Recognized",
        )

    def test_the_called_ae_title_is_compared_after_trimming_and_case_sensitively(
        self, default: Receiver
    ) -> None:
        padded = raw_request(default.port, called=" INGEST")
        assert send_raw(default.port, padded, wait_for_close=False).pdu[:1] == b"\x02"
        lower = send_raw(default.port, raw_request(default.port, called="ingest"))
        assert lower.rj == (1, 1, 7)

    def test_an_unknown_application_context_is_rejected_with_reason_2(
        self, default: Receiver
    ) -> None:
        answer = send_raw(default.port, raw_request(default.port, application_context="1.2.3"))
        assert answer.rj == (1, 1, 2)

    def test_the_application_context_is_checked_before_the_called_ae_title(
        self, default: Receiver
    ) -> None:
        request = raw_request(default.port, called="SOMEONE", application_context="1.2.3")
        assert send_raw(default.port, request).rj == (1, 1, 2)

    def test_an_unsupported_protocol_version_is_rejected_by_the_acse_provider(
        self, default: Receiver
    ) -> None:
        answer = send_raw(default.port, raw_request(default.port, protocol_version=2))
        assert answer.rj == (1, 2, 2)

    def test_the_socket_closes_50_ms_after_a_rejection_by_default(self, default: Receiver) -> None:
        answer = send_raw(default.port, raw_request(default.port, called="SOMEONE"))
        assert answer.rj == (1, 1, 7)
        assert 0.04 <= answer.closed_after_s < 0.5


class TestPresentationContexts:
    def test_verification_is_accepted_with_implicit_vr_only(self, default: Receiver) -> None:
        assoc = associate(
            default.port, [(VERIFICATION, [EXPLICIT_VR_LE]), (VERIFICATION, [IMPLICIT_VR_LE])]
        )
        try:
            assert results(assoc) == {
                1: (TRANSFER_SYNTAXES_NOT_SUPPORTED, EXPLICIT_VR_LE),
                3: (ACCEPTANCE, IMPLICIT_VR_LE),
            }
        finally:
            assoc.release()

    def test_the_first_proposed_transfer_syntax_wins(self, default: Receiver) -> None:
        assoc = associate(
            default.port,
            [
                (CT_IMAGE_STORAGE, [JPEG_BASELINE, EXPLICIT_VR_LE, IMPLICIT_VR_LE]),
                (CT_IMAGE_STORAGE, [IMPLICIT_VR_LE, EXPLICIT_VR_LE]),
            ],
        )
        try:
            assert results(assoc) == {1: (0, JPEG_BASELINE), 3: (0, IMPLICIT_VR_LE)}
        finally:
            assoc.release()

    def test_unknown_classes_are_rejected_but_the_association_is_accepted(
        self, default: Receiver
    ) -> None:
        # pynetdicom as SCU would abort such an association itself: a raw peer looks at the AC.
        request = raw_request(default.port, contexts=[(PRIVATE_CLASS, [EXPLICIT_VR_LE])])
        answer = send_raw(default.port, request, wait_for_close=False)
        assert answer.results == {1: ABSTRACT_SYNTAX_NOT_SUPPORTED}

    def test_retired_and_private_dcm4che_classes_are_in_the_default_list(
        self, default: Receiver
    ) -> None:
        zero_padded_mr = "1.2.840.10008.5.1.4.1.1.40"
        assoc = associate(
            default.port,
            [(GENOZIP_STORAGE, ["1.2.840.10008.1.2.5"]), (zero_padded_mr, [IMPLICIT_VR_LE])],
        )
        try:
            assert results(assoc) == {1: (0, "1.2.840.10008.1.2.5"), 3: (0, IMPLICIT_VR_LE)}
        finally:
            assoc.release()

    def test_an_unknown_class_announced_as_storage_is_accepted(self, default: Receiver) -> None:
        related = SOPClassCommonExtendedNegotiation()
        related.sop_class_uid = PRIVATE_CLASS
        related.service_class_uid = STORAGE_SERVICE_CLASS
        assoc = associate(default.port, [(PRIVATE_CLASS, [EXPLICIT_VR_LE])], extended=[related])
        try:
            assert results(assoc) == {1: (ACCEPTANCE, EXPLICIT_VR_LE)}
        finally:
            assoc.release()

    def test_the_scu_role_is_granted_and_the_scp_role_never(self, default: Receiver) -> None:
        both = SCP_SCU_RoleSelectionNegotiation()
        both.sop_class_uid, both.scu_role, both.scp_role = CT_IMAGE_STORAGE, True, True
        scp_only = SCP_SCU_RoleSelectionNegotiation()
        scp_only.sop_class_uid, scp_only.scu_role, scp_only.scp_role = MR_IMAGE_STORAGE, False, True
        assoc = associate(
            default.port,
            [(CT_IMAGE_STORAGE, [EXPLICIT_VR_LE]), (MR_IMAGE_STORAGE, [EXPLICIT_VR_LE])],
            extended=[both, scp_only],
        )
        try:
            roles = [
                (item.sop_class_uid, item.scu_role, item.scp_role)
                for item in assoc.acceptor.user_information
                if isinstance(item, SCP_SCU_RoleSelectionNegotiation)
            ]
            # As the reference: a reply for each role item, granting the SCU role where a
            # capability serves the class; MR's context is rejected since its SCU role is not.
            assert roles == [(CT_IMAGE_STORAGE, True, False), (MR_IMAGE_STORAGE, False, False)]
            assert results(assoc) == {
                1: (ACCEPTANCE, EXPLICIT_VR_LE),
                3: (ABSTRACT_SYNTAX_NOT_SUPPORTED, EXPLICIT_VR_LE),
            }
        finally:
            assoc.release()


class TestAcceptance:
    def test_the_ac_advertises_131072_bytes_as_maximum_pdu(self, default: Receiver) -> None:
        assoc = associate(default.port, [(VERIFICATION, [IMPLICIT_VR_LE])])
        try:
            assert assoc.acceptor.maximum_length == 131072  # deliberately not the reference's
        finally:
            assoc.release()
        run = dcmtk("echoscu", "-aec", "INGEST", "127.0.0.1", str(default.port))
        assert "Max Send PDV: 131060" in run.stdout + run.stderr  # less 12 bytes of headers

    def test_an_async_window_is_granted_as_asked_when_we_set_no_limit(
        self, default: Receiver
    ) -> None:
        window = AsynchronousOperationsWindowNegotiation()
        window.maximum_number_operations_invoked = 5
        window.maximum_number_operations_performed = 3
        assoc = associate(default.port, [(VERIFICATION, [IMPLICIT_VR_LE])], extended=[window])
        try:
            assert assoc.acceptor.asynchronous_operations == (5, 3)
        finally:
            assoc.release()

    def test_any_user_identity_is_accepted_with_an_empty_positive_response(
        self, default: Receiver
    ) -> None:
        identity = UserIdentityNegotiation()
        identity.user_identity_type = 2
        identity.positive_response_requested = True
        identity.primary_field = b"alice"
        identity.secondary_field = b"wrong"
        assoc = associate(default.port, [(VERIFICATION, [IMPLICIT_VR_LE])], extended=[identity])
        try:
            assert assoc.is_established
            assert assoc.acceptor.user_identity.server_response == b""
        finally:
            assoc.release()


class TestRequests:
    def test_c_echo_is_answered_success(self, default: Receiver) -> None:
        assoc = associate(default.port, [(VERIFICATION, [IMPLICIT_VR_LE])])
        try:
            assert assoc.send_c_echo().Status == 0x0000
        finally:
            assoc.release()

    def test_c_find_on_an_accepted_context_is_not_supported_with_a_comment(
        self, receivers: Receivers
    ) -> None:
        receiver = receivers.start("--accept-unknown")
        find = PatientRootQueryRetrieveInformationModelFind
        assoc = associate(receiver.port, [(find, [IMPLICIT_VR_LE])])
        try:
            query = Dataset()
            query.QueryRetrieveLevel = "PATIENT"
            (status, _), *_ = list(assoc.send_c_find(query, find))
            assert status.Status == 0x0122
            assert "C-FIND is not supported" in status.ErrorComment
            assert "AffectedSOPClassUID" not in status
        finally:
            assoc.release()

    def test_an_n_request_gets_no_such_sop_class(self, default: Receiver) -> None:
        # Accepted via the Storage service class the RQ relates it to; N-CREATE is still refused.
        related = SOPClassCommonExtendedNegotiation()
        related.sop_class_uid = ModalityPerformedProcedureStep
        related.service_class_uid = STORAGE_SERVICE_CLASS
        assoc = associate(
            default.port, [(ModalityPerformedProcedureStep, [IMPLICIT_VR_LE])], extended=[related]
        )
        try:
            attributes = Dataset()
            attributes.PatientName = "X"
            status, _ = assoc.send_n_create(attributes, ModalityPerformedProcedureStep, "1.2.3.4")
            assert status.Status == 0x0118
            assert status.ErrorComment == "N-CREATE is not supported: this is a Storage SCP"
        finally:
            assoc.release()

    def test_a_c_store_of_the_verification_class_is_an_unrecognized_operation(
        self, default: Receiver
    ) -> None:
        assoc = associate(default.port, [(VERIFICATION, [IMPLICIT_VR_LE])])
        try:
            request = C_STORE()
            request.MessageID = 7
            request.AffectedSOPClassUID = VERIFICATION
            request.AffectedSOPInstanceUID = "1.2.3"
            request.Priority = 0
            response = exchange(assoc, request, 1)
            assert response.Status == 0x0211
            assert response.MessageIDBeingRespondedTo == 7
            assert response.ErrorComment == "C-STORE is not a Verification operation"
        finally:
            assoc.release()

    def test_a_request_without_sop_class_is_a_mistyped_argument(self, default: Receiver) -> None:
        assoc = associate(default.port, [(VERIFICATION, [IMPLICIT_VR_LE])])
        try:
            request = C_STORE()
            request.MessageID = 8
            request.AffectedSOPInstanceUID = "1.2.3"
            request.Priority = 0
            response = exchange(assoc, request, 1)
            assert response.Status == 0x0212
            assert response.ErrorComment == "C-STORE-RQ has no SOP Class UID"
        finally:
            assoc.release()
