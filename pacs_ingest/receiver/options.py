"""The receiver's options, named as in dcm4che's storescp, and the settings they make.

The storescp-specific rows are here; the storage rows beside `Filing` (shared/filing.py), the
shared network rows in `network_options.py`, the TLS rows in `tls_options.py`. `ROWS` is all of
them, in the order `-h` lists them.
"""

import argparse
import os
from dataclasses import dataclass

from pacs_ingest.receiver import affinity, network_options, sop_classes, tls_options
from pacs_ingest.receiver.network_options import NetworkSettings
from pacs_ingest.receiver.pressure import PressureLimits
from pacs_ingest.receiver.tls_options import TlsSettings
from pacs_ingest.shared import filing, modes
from pacs_ingest.shared.filing import STORAGE, Filing
from pacs_ingest.shared.modes import Modes
from pacs_ingest.shared.options import (
    Option,
    byte_size,
    dicom_int,
    from_options,
    non_negative,
    one_of,
    positive,
)


@dataclass(frozen=True, slots=True)
class Bind:
    """Where to listen, and which Called AE title to require (None: any)."""

    ae_title: str | None
    host: str
    port: int


def parse_bind(text: str) -> Bind:
    """`[aet[@ip]:]port` as dcm4che splits it: at the first `:`, then at the first `@`.

    No AE title, or `*`, accepts any Called AE. An IP needs an AE title; `AE@:port` listens on
    loopback only; without an IP we listen on every address.
    """
    head, colon, port_text = text.partition(":")
    if not colon:
        head, port_text = "", text
    ae_title, at, host = head.partition("@")
    if at and not ae_title:
        raise argparse.ArgumentTypeError("AE title cannot be empty")
    try:
        port = dicom_int(port_text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"invalid port in -b: {port_text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1..65535, not {port}")
    if len(ae_title) > 16:
        raise argparse.ArgumentTypeError(f"AE title is longer than 16 characters: {ae_title!r}")
    if at and not host:
        host = "127.0.0.1"
    return Bind(ae_title=None if ae_title in ("", "*") else ae_title, host=host, port=port)


def status_code(text: str) -> int:
    value = dicom_int(text) & 0xFFFF
    if value & 0xFF00 == 0xFF00:
        # Deliberate difference: the reference then never completes the operation (§9 item 3).
        raise argparse.ArgumentTypeError(
            f"{text} is a Pending status; a C-STORE must end with a final status"
        )
    return value


# Per receiver process; the reference has no limit. Each association costs a descriptor and a
# few kilobytes, so this is about fairness to other senders, not memory.
DEFAULT_MAX_ASSOCIATIONS = 200

ASSOCIATION = "association"
PROCESSES = "processes"

STORESCP_ROWS = (
    Option(
        ("-b", "--bind"),
        "listen on port, require Called AE title aet (none or *: any), bind to ip",
        ASSOCIATION,
        type=parse_bind,
        metavar="[aet[@ip]:]port",
        required=True,
    ),
    Option(
        ("--accept",),
        "accept only associations from these Calling AE titles",
        ASSOCIATION,
        type=str,
        kind="multi",
        metavar="aet",
    ),
    Option(
        ("--sop-classes",),
        "file of accepted SOP classes and their transfer syntaxes (Java .properties)",
        ASSOCIATION,
        type=str,
        default=sop_classes.DEFAULT_LOCATION,
        metavar="file|url",
    ),
    Option(
        ("--accept-unknown",),
        "accept any SOP class with any transfer syntax (--sop-classes is then not read)",
        ASSOCIATION,
        kind="flag",
    ),
    Option(
        ("--receive-delay",),
        "pause before reading the data set of an association's k-th C-STORE: value (k-1) mod n",
        STORAGE,
        type=dicom_int,
        kind="multi",
        metavar="ms",
    ),
    Option(
        ("--response-delay",),
        "pause before answering an association's k-th C-STORE: value (k-1) mod n",
        STORAGE,
        type=dicom_int,
        kind="multi",
        metavar="ms",
    ),
    Option(
        ("--status",),
        "status to return in every C-STORE-RSP that succeeded, e.g. B000H",
        STORAGE,
        type=status_code,
        default=0,
        metavar="code",
    ),
    Option(
        ("--ignore",),
        "do not store received objects; only answer with --status",
        STORAGE,
        kind="flag",
    ),
)

SPOOL_DIR = Option(
    ("--spool-dir",),
    "durable staging area shared with the workers; objects wait in it until filed",
    STORAGE,
    type=str,
    required=True,
    metavar="path",
)
OUR_ROWS = (
    SPOOL_DIR,
    Option(
        ("--require-queue",),
        "answer 0xA700 instead of Success while the job cannot be enqueued (the object is "
        "spooled and filed later either way)",
        STORAGE,
        kind="flag",
    ),
    Option(
        ("--min-free-space",),
        "refuse new associations (transient: try later) while the spool's file system has less "
        "free space, e.g. 500M or 2G; 0: never",
        STORAGE,
        type=byte_size,
        default=100 << 20,  # 100M
        metavar="size",
    ),
    Option(
        ("--max-backlog",),
        "refuse new associations (transient) while more objects than this wait to be filed; "
        "0: never",
        STORAGE,
        type=non_negative(dicom_int),
        default=0,
        metavar="n",
    ),
    Option(
        ("--receivers",),
        "receiver processes sharing the port (one event loop each)",
        PROCESSES,
        type=positive(dicom_int),
        default=os.cpu_count() or 1,
        metavar="n",
    ),
    Option(
        ("--receiver-affinity",),
        "spread: each receiver process runs on one CPU of its own, the receivers spread over "
        "the CPUs this command may use (fewer wake-ups across CPUs per store); none: wherever "
        "the kernel puts them",
        PROCESSES,
        type=one_of("--receiver-affinity", affinity.AFFINITIES),
        default=affinity.SPREAD,
        metavar="how",
    ),
    Option(
        ("--max-associations",),
        "associations one receiver process serves at once; more are refused as transient "
        "(A-ASSOCIATE-RJ 2, 3, 2: local limit exceeded)",
        PROCESSES,
        type=positive(dicom_int),
        default=DEFAULT_MAX_ASSOCIATIONS,
        metavar="n",
    ),
    Option(
        ("--sweep-interval",),
        "seconds between recovery sweeps of the spool",
        PROCESSES,
        type=positive(dicom_int),
        default=10,
        metavar="s",
    ),
)

ROWS = (
    *STORESCP_ROWS,
    *filing.ROWS,
    *network_options.ROWS,
    *tls_options.ROWS,
    *OUR_ROWS,
    *modes.ROWS,
)


@dataclass(frozen=True, slots=True)
class ReceiverSettings:
    bind: Bind
    accept: tuple[str, ...]
    capabilities: sop_classes.Capabilities
    receive_delay: tuple[int, ...]
    response_delay: tuple[int, ...]
    status: int
    ignore: bool
    require_queue: bool
    pressure: PressureLimits
    network: NetworkSettings
    tls: TlsSettings
    spool_dir: str
    modes: Modes
    filing: Filing
    receivers: int
    receiver_affinity: str
    max_associations: int
    sweep_interval: int
    redis_url: str
    queue: str
    log_level: str

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ReceiverSettings":
        """Settings from parsed options; ConfigError if the --sop-classes file is unusable."""
        return from_options(
            cls,
            args,
            capabilities=(
                sop_classes.ACCEPT_UNKNOWN
                if args.accept_unknown
                else sop_classes.load(args.sop_classes)
            ),
            pressure=from_options(PressureLimits, args),
            network=NetworkSettings.from_args(args),
            tls=TlsSettings.from_args(args),
            spool_dir=os.path.abspath(args.spool_dir),
            modes=from_options(Modes, args),
            filing=Filing.from_args(args),
        )
