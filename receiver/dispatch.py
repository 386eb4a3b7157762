"""Which service answers a DIMSE request, and the failure status of every other one (spec §3.5).

As in the reference, the service is found by the command's SOP Class UID, not by the presentation
context's abstract syntax: C-ECHO on Verification is answered Success, any C-STORE on any other
class is stored, and everything else is refused with a status and an Error Comment.
"""

import enum
from dataclasses import dataclass

VERIFICATION = "1.2.840.10008.1.1"
ERROR_COMMENT_MAX = 64  # (0000,0902) is an LO

# DIMSE statuses (PS3.7 Annex C)
NO_SUCH_SOP_CLASS = 0x0118
SOP_CLASS_NOT_SUPPORTED = 0x0122
UNRECOGNIZED_OPERATION = 0x0211
MISTYPED_ARGUMENT = 0x0212


class Service(enum.Enum):
    STORAGE = "storage"
    VERIFICATION = "verification"


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    comment: str


def route(command: str, sop_class_uid: str | None) -> Service | Refusal:
    """The service for a `command` request ("C-STORE", "N-GET", ...) on `sop_class_uid`."""
    if not sop_class_uid:
        return Refusal(MISTYPED_ARGUMENT, f"{command}-RQ has no SOP Class UID")
    if sop_class_uid == VERIFICATION:
        if command == "C-ECHO":
            return Service.VERIFICATION
        return Refusal(UNRECOGNIZED_OPERATION, f"{command} is not a Verification operation")
    if command == "C-STORE":
        return Service.STORAGE
    if command.startswith("C-"):
        return Refusal(
            SOP_CLASS_NOT_SUPPORTED, f"{command} is not supported: this is a Storage SCP"
        )
    return Refusal(NO_SUCH_SOP_CLASS, f"{command} is not supported: this is a Storage SCP")
