"""The byte stream of an association cut into PDUs, and P-DATA-TF PDUs into PDV fragments, as
the bytes arrive.

A P-DATA-TF is never held in memory: each PDV's bytes are handed on as slices of the chunk they
arrived in, so a data set streams into its spool file whatever PDU length the peer uses. Other
PDUs are small and handed on whole. Every length is checked against what encloses it and against
our limits; a stream that breaks PS3.8 9.3 stops at the first bad byte with the A-ABORT reason
for it. `receiver.association` is the sink.
"""

import struct
from collections.abc import Callable
from typing import Protocol

from pacs_ingest.receiver.pdu import (
    A_ABORT,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    CONTROL_LENGTH,
    HEADER,
    INVALID_PDU_PARAMETER_VALUE,
    P_DATA_TF,
    PDV_HEADER,
    PDV_HEADER_LENGTH,
    UNRECOGNIZED_PDU,
)

# Longest A-ASSOCIATE PDU we read: 128 contexts of many transfer syntaxes, plus a user identity
# (a Kerberos ticket or SAML assertion) fit easily; anything longer is not an honest request.
MAX_ASSOCIATE_PDU = 1 << 20
_CONTROL_PDUS = (A_RELEASE_RQ, A_RELEASE_RP, A_ABORT, A_ASSOCIATE_RJ)
_KNOWN_PDUS = (A_ASSOCIATE_RQ, A_ASSOCIATE_AC, *_CONTROL_PDUS)

# What the framer is reading
_PDU_HEADER, _PDU_BODY, _PDV_HEADER, _PDV_DATA, _SKIP = range(5)


class Sink(Protocol):
    def on_pdu(self, pdu_type: int, pdu: bytes) -> None:
        """A whole PDU other than P-DATA-TF, header included."""

    def on_p_data(self) -> bool:
        """A P-DATA-TF begins; False to skip it unread (PS3.8 AA-6: ignore)."""

    def on_fragment(self, context_id: int, control: int) -> Callable[[memoryview], None]:
        """A PDV begins: its presentation context and message control header. Returns what
        takes its bytes (called once per part they arrive in), so that the bytes of a data set
        go to its part file without a call per layer."""

    def on_fragment_end(self) -> bool:
        """The current PDV is complete; True to stop reading for now (the caller resumes)."""

    def on_invalid(self, reason: int, message: str) -> None:
        """The stream broke PS3.8; nothing more is read from it."""


class Framer:
    """Cuts one association's incoming bytes into PDUs and PDVs for a `Sink`."""

    def __init__(self, sink: Sink, max_pdu_length: int) -> None:
        self._sink = sink
        self._max_pdu_length = max_pdu_length  # --max-pdulen-rcv; 0: no limit
        self._reading = _PDU_HEADER
        self._partial = bytearray()  # a header or a small PDU arriving in pieces
        self._pdu_type = 0
        self._pdu_left = 0  # bytes of the current PDU not yet read
        self._pdv_left = 0  # bytes of the current PDV not yet read
        self._consume: Callable[[memoryview], None] = drop  # takes the current PDV's bytes
        self.broken = False

    def stop(self) -> None:
        """Read nothing more: the association is ending."""
        self.broken = True

    @property
    def mid_pdu(self) -> bool:
        """Whether a PDU has begun and not ended."""
        return self._reading != _PDU_HEADER or bool(self._partial)

    def feed(self, data: memoryview) -> int:
        """Read `data`; the number of bytes taken (less than all when the sink asked to stop
        or the stream broke)."""
        position, end = 0, len(data)
        stop = False
        while position < end and not stop and not self.broken:
            reading = self._reading
            if reading == _PDV_DATA:
                position, stop = self._pdv_data(data, position)
            elif reading == _PDU_HEADER:
                position, fields = self._header(data, position, HEADER)
                if fields is not None:
                    self._pdu_header(*fields)
            elif reading == _PDV_HEADER:
                position, fields = self._header(data, position, PDV_HEADER)
                if fields is not None:
                    stop = self._pdv_header(*fields)
            elif reading == _PDU_BODY:
                position = self._fill(data, position, self._pdu_left)
                if len(self._partial) == self._pdu_left:
                    pdu = HEADER.pack(self._pdu_type, self._pdu_left) + self._take_partial()
                    self._reading = _PDU_HEADER
                    self._sink.on_pdu(self._pdu_type, pdu)
            else:  # _SKIP
                take = min(self._pdu_left, end - position)
                position += take
                self._pdu_left -= take
                if not self._pdu_left:
                    self._reading = _PDU_HEADER
        return position

    def _pdv_data(self, data: memoryview, position: int) -> tuple[int, bool]:
        """Hand on what `data` holds of the current PDV; the new position, and whether the
        sink asked to stop."""
        take = min(self._pdv_left, len(data) - position)
        self._consume(data[position : position + take])
        self._pdv_left -= take
        self._pdu_left -= take
        if self._pdv_left:
            return position + take, False
        self._reading = _PDV_HEADER if self._pdu_left else _PDU_HEADER
        return position + take, self._sink.on_fragment_end()

    def _header(
        self, data: memoryview, position: int, header: struct.Struct
    ) -> tuple[int, tuple[int, ...] | None]:
        """Read a `header` (in place when it is whole in `data`, else gathered from the pieces
        it arrives in); the new position, and its fields once it is whole."""
        if not self._partial and len(data) - position >= header.size:
            return position + header.size, header.unpack_from(data, position)
        position = self._fill(data, position, header.size)
        if len(self._partial) < header.size:
            return position, None
        return position, header.unpack(self._take_partial())

    def _take_partial(self) -> bytes:
        taken = bytes(self._partial)
        self._partial.clear()
        return taken

    def _fill(self, data: memoryview, position: int, size: int) -> int:
        take = min(size - len(self._partial), len(data) - position)
        self._partial += data[position : position + take]
        return position + take

    def _invalid(self, reason: int, message: str) -> None:
        self.broken = True
        self._sink.on_invalid(reason, message)

    def _pdu_header(self, pdu_type: int, length: int) -> None:
        self._pdu_type, self._pdu_left = pdu_type, length
        if pdu_type == P_DATA_TF:
            if self._max_pdu_length and length > self._max_pdu_length:
                self._invalid(
                    INVALID_PDU_PARAMETER_VALUE,
                    f"P-DATA-TF of {length} bytes, over the {self._max_pdu_length} we accept",
                )
            elif length < PDV_HEADER_LENGTH:
                self._invalid(INVALID_PDU_PARAMETER_VALUE, f"P-DATA-TF of {length} bytes")
            else:
                self._reading = _PDV_HEADER if self._sink.on_p_data() else _SKIP
        elif pdu_type not in _KNOWN_PDUS:
            self._invalid(UNRECOGNIZED_PDU, f"unknown PDU type 0x{pdu_type:02X}")
        elif pdu_type in _CONTROL_PDUS and length != CONTROL_LENGTH:
            self._invalid(
                INVALID_PDU_PARAMETER_VALUE, f"PDU type 0x{pdu_type:02X} of {length} bytes, not 4"
            )
        elif length > MAX_ASSOCIATE_PDU:
            self._invalid(INVALID_PDU_PARAMETER_VALUE, f"A-ASSOCIATE PDU of {length} bytes")
        elif length == 0:
            self._sink.on_pdu(pdu_type, HEADER.pack(pdu_type, 0))
        else:
            self._reading = _PDU_BODY

    def _pdv_header(self, length: int, context_id: int, control: int) -> bool:
        """Start a PDV; True if the sink asked to stop (an empty PDV ends at once)."""
        room = self._pdu_left - 4  # what the P-DATA-TF has left after the PDV's length field
        self._pdu_left -= PDV_HEADER_LENGTH
        if room < 2 or not 2 <= length <= room:
            self._invalid(
                INVALID_PDU_PARAMETER_VALUE,
                f"PDV item of {length} bytes where its P-DATA-TF has {max(room, 0)} left",
            )
            return True
        self._pdv_left = length - 2
        self._consume = self._sink.on_fragment(context_id, control)
        if self._pdv_left:
            self._reading = _PDV_DATA
            return False
        self._reading = _PDV_HEADER if self._pdu_left else _PDU_HEADER
        return self._sink.on_fragment_end()


def drop(data: memoryview) -> None:
    """What takes the bytes of a PDV nobody reads (refused, --ignore, or no service user)."""
