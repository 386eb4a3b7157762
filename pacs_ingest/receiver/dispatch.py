"""Which service answers a DIMSE request, and the failure status of every other one (spec §3.5).

As in the reference, the service is found by the command's SOP Class UID, not by the presentation
context's abstract syntax: C-ECHO on Verification is answered Success, any C-STORE on any other
class is stored, and everything else is refused with a status and an Error Comment.
"""

import enum
from dataclasses import dataclass

from pacs_ingest.receiver.dimse import (
    C_ECHO_RQ,
    C_STORE_RQ,
    MISTYPED_ARGUMENT,
    NO_SUCH_SOP_CLASS,
    REQUEST_NAMES,
    SOP_CLASS_NOT_SUPPORTED,
    UNRECOGNIZED_OPERATION,
)

VERIFICATION = "1.2.840.10008.1.1"


class Service(enum.Enum):
    STORAGE = "storage"
    VERIFICATION = "verification"


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    comment: str


def route(command_field: int, sop_class_uid: str) -> Service | Refusal:
    """The service for a request with `command_field` on `sop_class_uid` ("" if absent)."""
    name = REQUEST_NAMES.get(command_field)
    if name is None:
        return Refusal(UNRECOGNIZED_OPERATION, f"unknown command 0x{command_field:04X}")
    if not sop_class_uid:
        return Refusal(MISTYPED_ARGUMENT, f"{name}-RQ has no SOP Class UID")
    if sop_class_uid == VERIFICATION:
        if command_field == C_ECHO_RQ:
            return Service.VERIFICATION
        return Refusal(UNRECOGNIZED_OPERATION, f"{name} is not a Verification operation")
    if command_field == C_STORE_RQ:
        return Service.STORAGE
    status = SOP_CLASS_NOT_SUPPORTED if name.startswith("C-") else NO_SUCH_SOP_CLASS
    return Refusal(status, f"{name} is not supported: this is a Storage SCP")
