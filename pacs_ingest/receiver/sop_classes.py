"""Which abstract syntaxes the receiver accepts, and with which transfer syntaxes.

The `--sop-classes` file of dcm4che's storescp (spec §6): Java `.properties`, one SOP class per
key (a UID, or a keyword such as `CTImageStorage`), its transfer syntaxes as the value (`*` for
any, else UIDs or keywords separated by commas). An item that starts with a digit or `*` is a UID
as written; anything else must be a keyword we know. `--accept-unknown` replaces the whole table
by one wildcard capability.

The default table ships with the package, already resolved to UIDs: `sop-classes.properties`
beside this module (the reference's `resource:sop-classes.properties`).
"""

import urllib.parse
import urllib.request
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path

from pydicom._uid_dict import UID_dictionary

from pacs_ingest.receiver import properties
from pacs_ingest.shared.options import ConfigError

DEFAULT_LOCATION = "resource:sop-classes.properties"
WILDCARD = "*"  # as a key: any abstract syntax; as a value: any transfer syntax

# A capability: the transfer syntaxes accepted for one abstract syntax; None means any.
TransferSyntaxes = frozenset[str] | None
Capabilities = Mapping[str, TransferSyntaxes]

# Names dcm4che knows and pydicom's UID dictionary does not.
_EXTRA_KEYWORDS = {
    "MRImageStorageZeroPadded": "1.2.840.10008.5.1.4.1.1.40",
    "PrivateDcm4cheEncapsulatedGenozipStorage": "1.2.40.0.13.1.5.1.4.1.1.104.1",
    "PrivateDcm4cheEncapsulatedBzip2VCFStorage": "1.2.40.0.13.1.5.1.4.1.1.104.2",
    "PrivateDcm4cheEncapsulatedBzip2DocumentStorage": "1.2.40.0.13.1.5.1.4.1.1.104.3",
}

ACCEPT_UNKNOWN: Capabilities = {WILDCARD: None}


@cache
def _keywords() -> dict[str, str]:
    known: dict[str, str] = {}
    for uid, (_name, _kind, _info, _retired, keyword) in UID_dictionary.items():
        if keyword:
            known.setdefault(keyword, uid)
    known.update(_EXTRA_KEYWORDS)
    return known


def resolve(item: str) -> str:
    """A UID or `*` as written, or the UID of a keyword; KeyError for an unknown keyword."""
    if item[:1].isdigit() or item.startswith(WILDCARD):
        return item
    return _keywords()[item]


def _read_location(location: str) -> bytes:
    """The bytes at `location`: `resource:<name>`, a file path, or a `file:` URL."""
    scheme, colon, rest = location.partition(":")
    try:
        if scheme == "resource" and colon:
            return (resources.files(__package__) / rest).read_bytes()
        if not colon or len(scheme) <= 1:  # no scheme, or a Windows drive letter
            return Path(location).read_bytes()
        if scheme == "file":
            path = urllib.request.url2pathname(urllib.parse.urlparse(location).path)
            return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"--sop-classes {location}: {exc.strerror or exc}") from None
    raise ConfigError(f"--sop-classes {location}: only files and file: URLs can be read")


def _transfer_syntaxes(value: str, where: str) -> TransferSyntaxes:
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise ConfigError(f"{where}: empty transfer syntax in {value!r}")
    if WILDCARD in items:
        return None
    try:
        return frozenset(resolve(item) for item in items)
    except KeyError as exc:
        raise ConfigError(f"{where}: unknown transfer syntax {exc.args[0]!r}") from None


def parse(data: bytes, location: str) -> dict[str, TransferSyntaxes]:
    """The capabilities a `.properties` file describes; ConfigError names the bad line."""
    table: dict[str, TransferSyntaxes] = {}
    try:
        entries = properties.read(data)
    except properties.PropertiesError as exc:
        raise ConfigError(f"--sop-classes {location}: {exc}") from None
    for entry in entries:
        where = f"--sop-classes {location} line {entry.line}"
        key = entry.key.strip()
        try:
            abstract_syntax = resolve(key)
        except KeyError:
            raise ConfigError(f"{where}: unknown SOP class {key!r}") from None
        if not entry.value.strip():
            raise ConfigError(f"{where}: no transfer syntax for {key}")
        table[abstract_syntax] = _transfer_syntaxes(entry.value, where)
    return table


def load(location: str = DEFAULT_LOCATION) -> dict[str, TransferSyntaxes]:
    """Read and resolve the `--sop-classes` file at `location` (checked at start-up)."""
    return parse(_read_location(location), location)
