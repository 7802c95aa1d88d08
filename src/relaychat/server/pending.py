"""Commands that take longer than one call: slow work off the core, answers sent in parts.

A connection's commands are answered in the order they were sent (issue 11 fix 8). Two kinds of
command cannot answer at once:

- **Offloaded** (:meth:`Pending.offload`): the command needs a password hash (REGISTER, SASL
  PLAIN, PASS, OPER, the server password) or a mail command. The job goes to the worker
  (``accounts/worker.py``, fair-shared by address group and account) and the command finishes in
  the completion, on the core's thread, with a fresh :class:`Replies` that keeps the command's
  label.
- **Streamed** (:meth:`Pending.stream`): the answer is long (LIST of thousands of channels). It is
  produced in parts; the next part only when the edge says the client's output has drained
  (:meth:`Pending.writable`), so the answer never holds more than a part in the send queue, and
  other clients are served between parts.
- **Deferred** (:meth:`Pending.defer`): the answer waits on purpose (a *tarpit*: a login tried
  while locked out is refused only after ``throttle.tarpit`` seconds, so a client that waits
  for its answers cannot cycle through attempts as fast as the server refuses them). The core
  asks the edge to call :meth:`ServerCore.tick` by then through ``wakeup(when)``.

Rules:
1. While a command of a connection is pending (``User.busy``), its later lines are *held* by the
   core, in order, and replayed when it completes (:meth:`Pending._replay`); a replayed line may
   make the connection busy again, and the rest wait for that one. Keepalive still counts them.
2. Held input is bounded by ``limits.recvq`` bytes, as the edge bounds its own: past it the
   client is dropped (Excess Flood).
3. Nothing here reads a clock or touches a socket: the worker reports the time with the result,
   and the edge calls :meth:`Pending.writable`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from relaychat.errors import ProtocolError
from relaychat.protocol import numerics as N
from relaychat.protocol.message import Message
from relaychat.server.replies import Replies
from relaychat.server.state import User

if TYPE_CHECKING:
    from relaychat.accounts.worker import Worker
    from relaychat.config import Config

__all__ = ["MAX_WAITING", "Held", "Pending", "Step"]

log = logging.getLogger("relaychat.server")

T = TypeVar("T")

#: Most lines held for one user while an earlier command waits; past it (or past
#: ``limits.recvq`` bytes) the client is flooding, and is dropped as for any flood.
MAX_WAITING = 512

#: One held input: a parsed line, or a line that could not be parsed (answered in its turn).
Held = Message | ProtocolError

#: One part of a streamed answer: adds to the replies, returns ``True`` when it was the last.
Step = Callable[[Replies], bool]


def held_size(item: Held) -> int:
    """About how many bytes a held line took on the wire (for the ``recvq`` bound)."""
    if isinstance(item, ProtocolError):
        return 64
    size = len(item.command) + 2 + sum(len(p) + 1 for p in item.params)
    if item.tags:
        size += sum(len(k) + len(v) + 2 for k, v in item.tags.items())
    return size


class Pending:
    """The core's slow commands (a mixin of :class:`~relaychat.server.core.ServerCore`)."""

    # Set by ServerCore.
    config: Config
    name: str
    now: float
    worker: Worker
    #: Called with a time when :meth:`ServerCore.tick` must run by then (the edge schedules it).
    wakeup: Callable[[float], None]
    _deferred: list[tuple[float, int, User, Callable[[Replies], None], str | None]]
    _deferred_seq: itertools.count[int]

    def new_batch_id(self) -> bytes:  # ServerCore's
        raise NotImplementedError

    def _dispatch(self, user: User, item: Held, now: float) -> None:  # ServerCore's
        raise NotImplementedError

    def disconnect(self, user: User, reason: str) -> None:  # ServerCore's
        raise NotImplementedError

    # --- holding input -------------------------------------------------------------------------

    def _hold(self, user: User, item: Held) -> None:
        """Keep ``item`` until the pending command of ``user`` completes (rule 1)."""
        held = user.held
        if held is None:
            held = user.held = deque()
        held.append(item)
        user.held_size += held_size(item)
        if user.held_size > self.config.limits.recvq or len(held) > MAX_WAITING:
            held.clear()
            user.held_size = 0
            self.disconnect(user, "Excess Flood")

    def _replay(self, user: User, now: float) -> None:
        """Handle the held lines of ``user`` in order until one makes it busy again."""
        held = user.held
        while held and not user.busy and not user.quitting:
            item = held.popleft()
            user.held_size -= held_size(item)
            self._dispatch(user, item, now)
        if held is not None and not held:
            user.held = None
            user.held_size = 0

    def hold(self, user: User) -> None:
        """Hold ``user``'s next commands until :meth:`release` (a command waiting for an answer
        from outside the core: a network-wide nick claim, ...).

        The caller must make sure :meth:`release` follows, on success, failure or timeout.
        """
        user.busy = True

    def release(self, user: User, now: float) -> None:
        """Carry out the commands held for ``user``, in order (they may hold it again)."""
        user.busy = False
        self.now = now
        self._replay(user, now)

    # --- offloaded work ------------------------------------------------------------------------

    def offload(
        self,
        user: User,
        out: Replies,
        job: Callable[[], T],
        then: Callable[[T | None, Replies], None],
        *,
        account: str | None = None,
        busy: Callable[[Replies], None] | None = None,
    ) -> bool:
        """Run ``job`` on the worker, then ``then(result, replies)`` on the core's thread.

        The connection is busy meanwhile (its later lines are held). ``replies`` is a fresh
        :class:`Replies` that carries ``out``'s label (the command's answer comes from the
        completion), flushed after ``then``; then the held lines are replayed. Nothing happens
        if the client has left by then.

        Args:
            user: whose command this is.
            out: the command's replies; add nothing to it after this call.
            job: the slow part, run on the worker; it must not touch the core.
            then: the rest of the command; gets ``None`` when ``job`` raised.
            account: the account the job is about (the worker rotates accounts).
            busy: how to refuse when the worker is too busy (its share for this address is
                full): called after ``min(worker.retry_after(), throttle.tarpit)`` seconds, so a
                client cannot spin on refusals (see :meth:`defer`).

        Returns:
            ``False`` when the worker is too busy and no ``busy`` was given: nothing was
            started, tell the client to try again in ``self.worker.retry_after()`` seconds.
        """
        label = out.label

        def done(result: T | None, now: float) -> None:
            user.busy = False
            if user.quitting:
                return
            self.now = now
            replies = Replies(self, user, label)
            try:
                then(result, replies)
            except Exception:
                log.exception("completion of a command failed (connection #%d)", user.id)
                replies.items.clear()
                replies.numeric(
                    N.ERR_UNKNOWNERROR, "*", text="Internal error; the command was not carried out"
                )
            replies.flush()
            self._replay(user, now)

        user.busy = True
        if not self.worker.submit(job, done, key=user.ip_group, account=account):
            user.busy = False
            if busy is None:
                return False
            wait = min(self.worker.retry_after(), self.config.throttle.tarpit)
            self.defer(user, out, wait, busy)
            return True
        out.label = None  # answered by the completion
        return True

    # --- deferred answers ----------------------------------------------------------------------

    def defer(
        self, user: User, out: Replies, delay: float, then: Callable[[Replies], None]
    ) -> None:
        """Answer with ``then(replies)`` ``delay`` seconds from now (at the tick after it).

        The connection is busy meanwhile (its later lines are held); ``replies`` carries the
        command's label.
        """
        due = self.now + max(0.0, delay)
        heapq.heappush(self._deferred, (due, next(self._deferred_seq), user, then, out.label))
        out.label = None
        user.busy = True
        self.wakeup(due)

    def tarpit(
        self, user: User, out: Replies, wait: float, refuse: Callable[[Replies], None]
    ) -> None:
        """Refuse an attempt made while locked out for ``wait`` more seconds: ``refuse`` answers
        after ``min(wait, throttle.tarpit)`` seconds (see :meth:`defer`)."""
        self.defer(user, out, min(wait, self.config.throttle.tarpit), refuse)

    def next_due(self) -> float | None:
        """When the earliest deferred answer is due, or ``None``."""
        return self._deferred[0][0] if self._deferred else None

    def run_due(self, now: float) -> None:
        """Send the deferred answers that are due (``tick`` calls it; so may the edge, at the time
        ``wakeup`` asked for)."""
        deferred = self._deferred
        while deferred and deferred[0][0] <= now:
            _, _, user, then, label = heapq.heappop(deferred)
            if user.quitting:
                continue
            user.busy = False
            replies = Replies(self, user, label)
            try:
                then(replies)
            except Exception:
                log.exception("deferred answer failed (connection #%d)", user.id)
            replies.flush()
            if not user.quitting:
                self._replay(user, now)

    # --- streamed answers ----------------------------------------------------------------------

    def stream(self, user: User, out: Replies, step: Step) -> None:
        """Answer with ``step(out)``, and while it says there is more, with further parts each
        time the client's output has drained (the edge calls :meth:`writable`).

        The connection is busy until the last part (its later lines are held).
        """
        if step(out):
            return
        out.flush(final=False)  # a labeled answer opens its batch here
        user.stream = (step, out.batch)
        out.batch = None
        user.busy = True

    def writable(self, user: User, now: float) -> None:
        """The edge: ``user``'s output has drained; send the next part of its streamed answer."""
        pending = user.stream
        if pending is None or user.quitting:
            return
        self.now = now
        step, batch = pending
        out = Replies(self, user)
        out.batch = batch
        try:
            finished = step(out)
        except Exception:
            log.exception("streamed answer failed (connection #%d)", user.id)
            finished = True
        out.flush(final=finished)
        if finished:
            user.stream = None
            user.busy = False
            self._replay(user, now)
