"""The DIMSE service user of one established association: PDV fragments become messages, and
messages become C-ECHO and C-STORE operations or refusals (spec §3.5, §4).

A command set is gathered in memory (it is small, and bounded); a data set is never: its
fragments go straight into the store's part file, or nowhere for a request we refuse. Each
C-STORE then waits for the group commit (a callback, no task of its own) and is answered, so
several stores of an asynchronous-operations window are in flight at once and each is answered as
its group commits.

Message-level mistakes of the peer (a data fragment with no command before it, a command inside
a data set, an unreadable or oversized command set) abort the association, as PS3.7 asks of a
DIMSE provider that cannot interpret a message.
"""

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pacs_ingest.receiver import dimse, dispatch
from pacs_ingest.receiver.commit import Commit, GroupCommit
from pacs_ingest.receiver.dimse import Command, CommandError
from pacs_ingest.receiver.framing import drop
from pacs_ingest.receiver.pacing import cycled_delay
from pacs_ingest.receiver.pdu import COMMAND, LAST_FRAGMENT
from pacs_ingest.receiver.store import Origin, PartFile
from pacs_ingest.shared import log
from pacs_ingest.shared.spool import Spool

# Operations of one association we let run at once; more waits in the peer's TCP window.
MAX_OPERATIONS_IN_FLIGHT = 32


@dataclass(frozen=True, slots=True)
class StorePolicy:
    status: int  # --status: the status of every successful store
    ignore: bool  # --ignore: answer without storing
    require_queue: bool  # --require-queue: no Success unless the job is enqueued
    receive_delays: tuple[int, ...] = ()
    response_delays: tuple[int, ...] = ()


class Link(Protocol):
    """What the service user needs of its association (receiver.association)."""

    def send_message(self, context_id: int, command_set: bytes) -> None: ...
    def abort(self, why: str) -> None: ...
    def hold(self, reason: str) -> None: ...
    def resume(self, reason: str) -> None: ...
    def pause(self, seconds: float) -> None: ...
    def operations_done(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Storage:
    """What every association of a receiver process stores with."""

    spool: Spool
    committer: GroupCommit
    policy: StorePolicy


@dataclass(slots=True)
class _Message:
    """A request whose command set arrived and whose data set is arriving."""

    command: Command
    context_id: int
    part: PartFile | None  # where the data set goes; None: dropped
    store_index: int = 0  # k of the association's C-STOREs; 0 for other requests
    refusal: dispatch.Refusal | None = None
    fragments: int = 0
    held_until: float = 0.0  # loop time the --receive-delay ends


class ServiceUser:
    def __init__(
        self,
        link: Link,
        storage: Storage,
        transfer_syntaxes: dict[int, str],  # accepted context ID -> transfer syntax
        origin: Origin,
        peer: str,
    ) -> None:
        self._link = link
        self._transfer_syntaxes = transfer_syntaxes
        self._origin = origin
        self._spool = storage.spool
        self._committer = storage.committer
        self._policy = storage.policy
        self._peer = peer
        # Kept: asyncio.get_running_loop() makes a getpid system call, and stores need the loop.
        self._loop = asyncio.get_running_loop()
        self._command = bytearray()
        self._command_context: int | None = None
        self._message: _Message | None = None
        self._fragment_is_command = False
        self._fragment_is_last = False
        self._in_progress = 0
        self._stores_received = 0
        self.objects = 0  # stored and answered with success
        self.bytes = 0
        self.answering = True  # False once our A-RELEASE-RQ went out: nothing can be answered

    @property
    def mid_message(self) -> bool:
        """A message's command or data set has begun to arrive and not ended."""
        return self._message is not None or self._command_context is not None

    @property
    def answers_due(self) -> int:
        """Requests received whole and not answered yet (stores waiting for their group
        commit, or for --receive-delay and --response-delay)."""
        arriving = self._message
        counted = arriving is not None and (arriving.store_index or arriving.refusal is not None)
        return self._in_progress - bool(counted)

    @property
    def idle(self) -> bool:
        """No operation in progress and no message half received."""
        return not self._in_progress and not self.mid_message

    # -- fragments (from receiver.association, which checked the context ID) -----------------

    def fragment(self, context_id: int, control: int) -> Callable[[memoryview], None]:
        """A PDV begins; what takes its bytes."""
        self._fragment_is_command = bool(control & COMMAND)
        self._fragment_is_last = bool(control & LAST_FRAGMENT)
        message = self._message
        if self._fragment_is_command:
            if message is not None:
                self._link.abort("a command fragment inside a data set")
            elif self._command_context not in (None, context_id):
                self._link.abort("command fragments on two presentation contexts")
            else:
                self._command_context = context_id
                return self._command_fragment
        elif message is None:
            self._link.abort("a data fragment without a command before it")
        elif context_id != message.context_id:
            self._link.abort("a data set's fragments on two presentation contexts")
        elif message.part is not None:
            return message.part.write
        return drop

    def _command_fragment(self, data: memoryview) -> None:
        self._command += data
        if len(self._command) > dimse.MAX_COMMAND_SET:
            self._link.abort(f"a command set over {dimse.MAX_COMMAND_SET} bytes")

    def fragment_end(self) -> None:
        if self._fragment_is_command:
            if self._fragment_is_last:
                self._command_complete()
            return
        message = self._message
        if message is None:
            return
        message.fragments += 1
        if message.fragments == 1 and message.store_index:
            # --receive-delay: after the command and the first data fragment (spec §2.2); the
            # store, like the reading of the rest, waits for it.
            delay = cycled_delay(self._policy.receive_delays, message.store_index)
            self._link.pause(delay)
            message.held_until = self._loop.time() + delay
        if self._fragment_is_last:
            self._message = None
            self._data_set_complete(message)

    # -- requests ------------------------------------------------------------------------------

    def _command_complete(self) -> None:
        context_id = self._command_context
        assert context_id is not None
        self._command_context = None
        try:
            command = dimse.decode(bytes(self._command))
        except CommandError as exc:
            self._link.abort(f"unreadable command set: {exc}")
            return
        finally:
            self._command.clear()
        if command.is_response:  # we sent no request: nothing to do with a response
            log.warning("dimse.unexpected_response", command=command.name, peer=self._peer)
        if command.is_response or command.command_field == dimse.C_CANCEL_RQ or not self.answering:
            # Nothing to answer (a cancel, a response; or our A-RELEASE-RQ is out): read it all.
            if command.has_data_set:
                self._message = _Message(command, context_id, None)
            return
        self._begin()
        route = dispatch.route(command.command_field, command.sop_class_uid)
        if route is dispatch.Service.VERIFICATION:
            self._answer(command, context_id, dimse.SUCCESS, with_uids=True)
        elif isinstance(route, dispatch.Refusal):
            self._refuse(command, context_id, route)
        else:
            self._stores_received += 1
            if command.has_data_set:
                self._message = _Message(
                    command, context_id, self._part(command, context_id), self._stores_received
                )
            else:  # answered after the receive delay and the response delay, as any store
                message = _Message(command, context_id, None, self._stores_received)
                delay = cycled_delay(self._policy.receive_delays, self._stores_received)
                self._link.pause(delay)
                self._loop.call_later(
                    delay,
                    self._finish,
                    message,
                    dimse.PROCESSING_FAILURE,
                    "C-STORE-RQ without a data set",
                )

    def _refuse(self, command: Command, context_id: int, refusal: dispatch.Refusal) -> None:
        log.warning(
            "dimse.refused",
            command=command.name,
            status=f"{refusal.status:04X}H",
            comment=refusal.comment,
            peer=self._peer,
        )
        if command.has_data_set:  # answered once its data set has been read (and dropped)
            self._message = _Message(command, context_id, None, refusal=refusal)
        else:
            self._answer(command, context_id, refusal.status, error_comment=refusal.comment)

    def _part(self, command: Command, context_id: int) -> PartFile | None:
        if self._policy.ignore:
            return None
        return PartFile(
            self._spool,
            sop_class_uid=command.sop_class_uid,
            sop_instance_uid=command.sop_instance_uid,
            transfer_syntax_uid=self._transfer_syntaxes[context_id],
            origin=self._origin,
        )

    def _data_set_complete(self, message: _Message) -> None:
        if message.refusal is not None:
            self._answer(
                message.command,
                message.context_id,
                message.refusal.status,
                error_comment=message.refusal.comment,
            )
        elif message.store_index:
            if (delay := message.held_until - self._loop.time()) > 0:
                self._loop.call_later(delay, self._store, message)
            else:
                self._store(message)

    def _store(self, message: _Message) -> None:
        """The data set is in; make it durable (unless --ignore), then answer."""
        part = message.part
        if part is not None:
            part.finish()
        if part is None:
            self._finish(message, self._policy.status)
        elif part.error is not None:
            part.discard()
            log.error("store.spool_failed", error=str(part.error), **self._facts(message, part))
            self._finish(
                message,
                dimse.OUT_OF_RESOURCES,
                f"cannot spool: {part.error.strerror or part.error}",
            )
        else:
            self._committer.commit(part, self._loop).add_done_callback(
                lambda done: self._committed(message, part, done.result())
            )

    def _committed(self, message: _Message, part: PartFile, commit: Commit) -> None:
        if not commit.durable:
            log.error("store.not_durable", error=commit.error, **self._facts(message, part))
            self._finish(message, dimse.OUT_OF_RESOURCES, commit.error)
        elif self._policy.require_queue and not commit.enqueued:
            # Durable all the same: the recovery sweep files it once Redis is back.
            log.error("store.not_enqueued", **self._facts(message, part))
            self._finish(message, dimse.OUT_OF_RESOURCES, "job queue unavailable (--require-queue)")
        else:
            log.debug("store.spooled", bytes=part.size, **self._facts(message, part))
            self.objects += 1
            self.bytes += part.size
            self._finish(message, self._policy.status)

    def _facts(self, message: _Message, part: PartFile) -> dict[str, str]:
        return {
            "name": part.name,
            "sop_instance_uid": message.command.sop_instance_uid,
            "calling_ae": self._origin.calling_ae_title,
            "peer": self._peer,
        }

    def _finish(self, message: _Message, status: int, comment: str = "") -> None:
        """Answer a C-STORE, after its --response-delay."""
        answer = functools.partial(
            self._answer,
            message.command,
            message.context_id,
            status,
            with_uids=True,
            error_comment=comment,
        )
        if delay := cycled_delay(self._policy.response_delays, message.store_index):
            self._loop.call_later(delay, answer)
        else:
            answer()

    # -- operations ------------------------------------------------------------------------------

    def _begin(self) -> None:
        self._in_progress += 1
        if self._in_progress >= MAX_OPERATIONS_IN_FLIGHT:
            self._link.hold("operations")

    def _answer(
        self,
        command: Command,
        context_id: int,
        status: int,
        *,
        with_uids: bool = False,
        error_comment: str = "",
    ) -> None:
        if self.answering:
            rsp = dimse.response(command, status, with_uids=with_uids, error_comment=error_comment)
            self._link.send_message(context_id, rsp)
        self._in_progress -= 1
        if self._in_progress < MAX_OPERATIONS_IN_FLIGHT:
            self._link.resume("operations")
        if self.idle:
            self._link.operations_done()

    def close(self) -> int:
        """The association is over: drop the part file of a store still arriving (its sender
        was never told it is stored). Stores already complete finish their commit. The number
        of objects left unfinished."""
        message, self._message = self._message, None
        if message is None:
            return 0
        if message.store_index or message.refusal is not None:
            self._in_progress -= 1  # an operation that will never be answered
        if message.part is None:
            return 0
        message.part.discard()
        return 1
