"""The timing of one association: --receive-delay, --response-delay and the idle timer.

The reference (spec §2.2, §2.3):

* `--receive-delay`: after the C-STORE-RQ command and the first data fragment were read, sleep
  before reading the rest of the data set, so the sender feels TCP back-pressure. Here the sleep
  happens in an EVT_PDU_RECV handler, which pynetdicom runs on the association's DUL thread: the
  only thread reading its socket, so nothing more is read while it sleeps.
* `--response-delay`: sleep after the store, successful or not, before the C-STORE-RSP is written.
* Both cycle through their values per association: the k-th C-STORE-RQ uses value (k-1) mod n;
  values <= 0 mean no sleep. C-ECHO is never delayed.
* `--idle-timeout` runs only while no operation is in progress: it stops when a request arrives and
  starts again once it was answered. pynetdicom's idle timer restarts on every PDU read instead,
  so a slow store (or a receive delay longer than the timeout) would abort the association.
"""

import struct
import threading
import time
from collections.abc import Sequence

from pynetdicom.events import Event
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.timer import Timer

from receiver.dispatch import VERIFICATION

C_STORE_RQ = 0x0001
C_CANCEL_RQ = 0x0FFF
NO_DATA_SET = 0x0101
COMMAND_FIELD = 0x00000100
AFFECTED_SOP_CLASS_UID = 0x00000002
COMMAND_DATA_SET_TYPE = 0x00000800


def cycled_delay(delays_ms: Sequence[int], k: int) -> float:
    """Seconds to sleep for the k-th (from 1) C-STORE of an association."""
    if not delays_ms:
        return 0.0
    value = delays_ms[(k - 1) % len(delays_ms)]
    return value / 1000 if value > 0 else 0.0


def command_elements(encoded: bytes) -> dict[int, bytes]:
    """The elements of a command set (implicit VR little endian, group 0000), by tag."""
    elements: dict[int, bytes] = {}
    offset = 0
    while offset + 8 <= len(encoded):
        group, element, length = struct.unpack_from("<HHI", encoded, offset)
        offset += 8
        elements[(group << 16) | element] = encoded[offset : offset + length]
        offset += length
    return elements


def _us(value: bytes | None) -> int | None:
    return int.from_bytes(value[:2], "little") if value and len(value) >= 2 else None


class IdleTimer(Timer):
    """pynetdicom's idle timer, held while any request of the association is in progress."""

    def __init__(self, timeout: float | None) -> None:
        super().__init__(timeout)
        self._in_progress = 0
        self._lock = threading.Lock()

    def hold(self) -> None:
        """A request arrived (DUL thread): stop until it is answered."""
        with self._lock:
            self._in_progress += 1
            self._start_time = self._end_time = None

    def release(self) -> None:
        """A request was answered (association thread): run again if none is left."""
        with self._lock:
            self._in_progress = max(0, self._in_progress - 1)
            if not self._in_progress:
                super().start()

    def start(self) -> None:
        with self._lock:
            if not self._in_progress:
                super().start()


class Pacing:
    """One association's timing. `on_pdu_received` runs on the DUL thread, the rest on the
    association thread; they share only counters that one thread each writes."""

    def __init__(
        self,
        receive_delays: Sequence[int],
        response_delays: Sequence[int],
        idle_timer: IdleTimer,
    ) -> None:
        self._receive_delays = tuple(receive_delays)
        self._response_delays = tuple(response_delays)
        self.idle_timer = idle_timer
        self._command = bytearray()
        self._stores_received = 0
        self._stores_answered = 0
        self._delay_due = 0.0  # the receive delay waiting for the first data fragment

    @property
    def watches_pdus(self) -> bool:
        """Whether `on_pdu_received` has work to do (parsing every command costs CPU)."""
        return bool(self._receive_delays) or self.idle_timer.timeout is not None

    def on_pdu_received(self, event: Event) -> None:
        """EVT_PDU_RECV: follow commands; sleep at the first data fragment of a C-STORE."""
        pdu = event.pdu
        if not isinstance(pdu, P_DATA_TF):
            return
        for item in pdu.presentation_data_value_items:
            value = item.presentation_data_value
            if value[0] & 0x01:  # command fragment
                self._command += value[1:]
                if value[0] & 0x02:  # ... the last one
                    self._command_complete(command_elements(bytes(self._command)))
                    self._command.clear()
            elif self._delay_due:
                delay, self._delay_due = self._delay_due, 0.0
                time.sleep(delay)

    def _command_complete(self, elements: dict[int, bytes]) -> None:
        command_field = _us(elements.get(COMMAND_FIELD))
        if command_field is None or command_field == C_CANCEL_RQ or command_field & 0x8000:
            return  # not a request, or one that gets no response of its own
        self.idle_timer.hold()
        sop_class = (
            elements.get(AFFECTED_SOP_CLASS_UID, b"").rstrip(b"\0 ").decode("ascii", "replace")
        )
        if command_field != C_STORE_RQ or not sop_class or sop_class == VERIFICATION:
            return
        self._stores_received += 1
        delay = cycled_delay(self._receive_delays, self._stores_received)
        if _us(elements.get(COMMAND_DATA_SET_TYPE)) == NO_DATA_SET:
            time.sleep(delay)
        else:
            self._delay_due = delay

    def before_store_response(self) -> None:
        """In the C-STORE handler, once the store is done: the --response-delay."""
        self._stores_answered += 1
        time.sleep(cycled_delay(self._response_delays, self._stores_answered))

    def request_answered(self) -> None:
        self.idle_timer.release()
