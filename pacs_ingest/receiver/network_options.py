"""dcm4che's shared network options as storescp registers them (spec §2.3), and their settings.

Times are milliseconds and sizes bytes, as in the reference; 0 means "none" or "the OS default".
"""

import argparse
from dataclasses import dataclass

from pacs_ingest.shared.options import Option, dicom_int, from_options, non_negative

NETWORK = "network"
DEFAULT_PDU_LENGTH = 16378
# Deliberate differences from the reference, which waits forever: a connection that never sends
# its A-ASSOCIATE-RQ is dropped after 30 s (the ARTIM timeout DCMTK and pynetdicom use), and an
# association idle for 5 minutes is aborted, so no peer can hold a slot for good.
DEFAULT_REQUEST_TIMEOUT = 30_000
DEFAULT_IDLE_TIMEOUT = 300_000
# Deliberately 8 times the reference's 16378: fewer, larger PDUs cost less per byte for large
# objects. Senders still choose smaller PDUs if they like; our memory does not depend on it.
DEFAULT_RECEIVE_PDU_LENGTH = 131072
_PDV_HEADER = 6  # a fragment needs room after its item header


def pdu_length(text: str) -> int:
    """A maximum PDU length: 0 (no limit) or room for at least one byte of a fragment."""
    value = non_negative(dicom_int)(text)
    if 0 < value <= _PDV_HEADER:
        raise argparse.ArgumentTypeError(f"must be 0 or more than {_PDV_HEADER}: {text!r}")
    return value


ROWS = (
    Option(
        ("--max-pdulen-rcv",),
        "maximum length of the PDUs we receive, advertised in the A-ASSOCIATE-AC (0: unlimited)",
        NETWORK,
        type=pdu_length,
        default=DEFAULT_RECEIVE_PDU_LENGTH,
        metavar="length",
    ),
    Option(
        ("--max-pdulen-snd",),
        "maximum length of the PDUs we send; the peer's, if smaller, wins (0: unlimited)",
        NETWORK,
        type=pdu_length,
        default=DEFAULT_PDU_LENGTH,
        metavar="length",
    ),
    Option(
        ("--not-async",),
        "do not negotiate asynchronous operations: as --max-ops-invoked 1 --max-ops-performed 1",
        NETWORK,
        kind="flag",
    ),
    Option(
        ("--max-ops-invoked",),
        "maximum number of operations the peer may invoke asynchronously (0: unlimited)",
        NETWORK,
        type=non_negative(dicom_int),
        default=0,
        metavar="n",
    ),
    Option(
        ("--max-ops-performed",),
        "maximum number of operations we perform asynchronously for the peer (0: unlimited)",
        NETWORK,
        type=non_negative(dicom_int),
        default=0,
        metavar="n",
    ),
    Option(
        ("--not-pack-pdv",),
        "send command and data set in separate PDUs (our responses carry no data set: no effect)",
        NETWORK,
        kind="flag",
    ),
    Option(
        ("--request-timeout",),
        "close a connection that sends no A-ASSOCIATE-RQ (nor finishes its TLS handshake) within "
        "this time (0: wait forever)",
        NETWORK,
        type=non_negative(dicom_int),
        default=DEFAULT_REQUEST_TIMEOUT,
        metavar="ms",
    ),
    Option(
        ("--idle-timeout",),
        "abort an association idle (no operation in progress) for this long (0: never)",
        NETWORK,
        type=dicom_int,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="ms",
    ),
    Option(
        ("--release-timeout",),
        "wait this long for an A-RELEASE-RP (we never request a release: no effect)",
        NETWORK,
        type=dicom_int,
        default=0,
        metavar="ms",
    ),
    Option(
        ("--soclose-delay",),
        "delay between sending A-ASSOCIATE-RJ, A-RELEASE-RP or A-ABORT and closing the socket",
        NETWORK,
        type=non_negative(dicom_int),
        default=50,
        metavar="ms",
    ),
    Option(
        ("--sosnd-buffer",),
        "SO_SNDBUF of each accepted socket (0: the OS default)",
        NETWORK,
        type=non_negative(dicom_int),
        default=0,
        metavar="bytes",
    ),
    Option(
        ("--sorcv-buffer",),
        "SO_RCVBUF of the listening socket, inherited by accepted ones (0: the OS default)",
        NETWORK,
        type=non_negative(dicom_int),
        default=0,
        metavar="bytes",
    ),
    Option(
        ("--tcp-delay",),
        "leave Nagle's algorithm on (by default TCP_NODELAY is set, as the reference does)",
        NETWORK,
        kind="flag",
    ),
)


def _seconds(ms: int) -> float | None:
    return ms / 1000 if ms > 0 else None


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    max_pdulen_rcv: int
    max_pdulen_snd: int
    max_ops_invoked: int
    max_ops_performed: int
    not_pack_pdv: bool
    request_timeout: int
    idle_timeout: int
    release_timeout: int
    soclose_delay: int
    sosnd_buffer: int
    sorcv_buffer: int
    tcp_delay: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "NetworkSettings":
        if not args.not_async:
            return from_options(cls, args)
        return from_options(cls, args, max_ops_invoked=1, max_ops_performed=1)

    @property
    def request_timeout_s(self) -> float | None:
        return _seconds(self.request_timeout)

    @property
    def idle_timeout_s(self) -> float | None:
        return _seconds(self.idle_timeout)
