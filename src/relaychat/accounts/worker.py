"""Where slow work runs: argon2 hashing and checking (~50-200 ms of CPU each), mail commands.

The core is synchronous and must never block, so a command that needs a hash hands a *job* (a
function of no arguments, run in a thread) and a *done* callback to a :class:`Worker`. The done
callback runs later on the core's thread with the job's result and the time, and finishes the
command (see ``server/pending.py``).

- :class:`ThreadWorker` is the server's: jobs run on its own threads, at most ``concurrency``
  at once (argon2 takes 64 MiB each), at a lower scheduling priority than the event loop
  (:data:`WORKER_NICE`: argon2 keeps a core busy for a fifth of a second with several lanes
  of its own; on a busy machine the loop must win that core back at once, or every client
  waits behind a password check). Waiting jobs are kept per *key* (the
  client's address group) and started round-robin across keys, so one address with many
  connections gets one turn in each round like everyone else, never the whole queue; a key
  whose next job is about an *account* that already has a job running waits for the next round
  (one account's checks never take every thread). Each key may have at most ``per_key`` jobs
  waiting, and all of them at most ``max_pending``; past that :meth:`Worker.submit` says busy
  and :meth:`Worker.retry_after` says for how long, about. (Accounts are not given a bound of
  their own: an attacker filling it would lock the owner out; the login lock-outs in
  ``server/throttle.py`` protect accounts instead.)
- :class:`InlineWorker` runs the job at once (in-memory tests and tools).
- :class:`QueueWorker` keeps jobs until :meth:`QueueWorker.run_pending` (tests of what happens
  while a check is in flight).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from relaychat.ratelog import RateLimitedLog

__all__ = ["WORKER_NICE", "Done", "InlineWorker", "QueueWorker", "ThreadWorker", "Worker"]

log = logging.getLogger("relaychat.accounts")

T = TypeVar("T")

#: How much nicer (lower priority) than the server the worker threads run (Linux: per thread;
#: argon2's lane threads inherit it). Raising one's own niceness needs no privilege.
WORKER_NICE = 10

#: A job's completion: called on the core's thread with the job's result (``None`` when the job
#: raised; the worker has logged it) and the current time.
Done = Callable[[T | None, float], None]


class Worker(Protocol):
    """Runs blocking jobs away from the core and reports back on its thread."""

    def submit(
        self, job: Callable[[], T], done: Done[T], *, key: str = "", account: str | None = None
    ) -> bool:
        """Run ``job`` somewhere, then ``done(result, now)`` on the core's thread.

        Args:
            key: whose job it is (the client's address group): waiting jobs are served
                round-robin across keys, and each key has a bounded share.
            account: the account the job is about, if any: bounded the same way.

        Returns:
            ``False`` when the worker is too busy to take the job (``done`` will not be called);
            the caller tells the client to try again in :meth:`retry_after` seconds.
        """
        ...

    def retry_after(self) -> float:
        """About how many seconds a refused client should wait before trying again."""
        ...


def _run(job: Callable[[], T]) -> T | None:
    try:
        return job()
    except Exception:
        log.exception("account job %r failed", job)
        return None


class InlineWorker:
    """Runs each job at once, in the caller's thread.

    Args:
        clock: what ``now`` to report to ``done``.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def submit(
        self, job: Callable[[], T], done: Done[T], *, key: str = "", account: str | None = None
    ) -> bool:
        done(_run(job), self.clock())
        return True

    def retry_after(self) -> float:
        return 1.0


class QueueWorker:
    """Holds jobs until :meth:`run_pending`; for tests of the time a check takes.

    Args:
        clock: what ``now`` to report to ``done``.
        limit: how many jobs it takes before it says it is busy.
    """

    def __init__(self, clock: Callable[[], float] = time.time, limit: int = 100) -> None:
        self.clock = clock
        self.limit = limit
        self.jobs: deque[tuple[Callable[[], Any], Done[Any]]] = deque()
        #: The ``key`` of every job submitted, in order (tests of the fair share).
        self.keys: list[str] = []

    def submit(
        self, job: Callable[[], T], done: Done[T], *, key: str = "", account: str | None = None
    ) -> bool:
        if len(self.jobs) >= self.limit:
            return False
        self.jobs.append((job, done))
        self.keys.append(key)
        return True

    def retry_after(self) -> float:
        return 1.0

    def run_pending(self) -> int:
        """Run every queued job (and any they queue) and its ``done``; return how many ran."""
        count = 0
        while self.jobs:
            job, done = self.jobs.popleft()
            done(_run(job), self.clock())
            count += 1
        return count


def _lower_priority() -> None:
    """Run this worker thread :data:`WORKER_NICE` steps nicer than it started (where the
    platform lets a thread have its own priority; elsewhere nothing happens)."""
    try:
        tid = threading.get_native_id()
        now = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, now + WORKER_NICE))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        pass


class _Job:
    __slots__ = ("account", "done", "job", "key")

    def __init__(
        self, job: Callable[[], Any], done: Done[Any], key: str, account: str | None
    ) -> None:
        self.job = job
        self.done = done
        self.key = key
        self.account = account


class ThreadWorker:
    """Runs jobs on the event loop's default executor, fairly across keys.

    Args:
        loop: the server's event loop; ``done`` callbacks run on it.
        concurrency: jobs running at once (each argon2 check holds 64 MiB while it runs).
        max_pending: jobs waiting for a thread, in all.
        per_key: jobs one key (or one account) may have waiting.
        log_interval: seconds between two "busy" log lines (the rest are counted).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        concurrency: int = 2,
        max_pending: int = 64,
        per_key: int = 4,
        log_interval: float = 10.0,
    ) -> None:
        self.loop = loop
        self.concurrency = concurrency
        self.max_pending = max_pending
        self.per_key = per_key
        self.running = 0
        self.waiting = 0
        self._queues: OrderedDict[str, deque[_Job]] = OrderedDict()
        self._accounts: dict[str, int] = {}  # account -> jobs running for it
        self._average = 0.1  # seconds a job takes, a moving average
        self._log = RateLimitedLog(log, log_interval)
        self._executor = ThreadPoolExecutor(
            max_workers=concurrency,
            thread_name_prefix="relaychat-hash",
            initializer=_lower_priority,
        )

    def submit(
        self, job: Callable[[], T], done: Done[T], *, key: str = "", account: str | None = None
    ) -> bool:
        item = _Job(job, done, key, account)
        if self.running < self.concurrency and not self.waiting:
            self._start(item)
            return True
        queue = self._queues.get(key)
        if self.waiting >= self.max_pending:
            why = "worker busy: %d password checks waiting"
            self._log.warning("worker busy", why, self.waiting, now=time.monotonic())
            return False
        if queue is not None and len(queue) >= self.per_key:
            self._log.warning(
                "worker share used",
                "password checks refused: %s has its share (%d) waiting already",
                key,
                self.per_key,
                now=time.monotonic(),
            )
            return False
        if queue is None:
            queue = self._queues[key] = deque()
        queue.append(item)
        self.waiting += 1
        return True

    def retry_after(self) -> float:
        rounds = self.waiting / max(1, self.concurrency) + 1
        return max(1.0, self._average * rounds)

    def reconfigure(
        self, *, concurrency: int, max_pending: int, per_key: int, log_interval: float
    ) -> None:
        """Take new bounds (a reload); a new thread count takes new threads, the jobs running
        finish on the old ones."""
        self.max_pending = max_pending
        self.per_key = per_key
        self._log.interval = log_interval
        if concurrency != self.concurrency:
            old = self._executor
            self.concurrency = concurrency
            self._executor = ThreadPoolExecutor(
                max_workers=concurrency,
                thread_name_prefix="relaychat-hash",
                initializer=_lower_priority,
            )
            old.shutdown(wait=False)
            while self.running < self.concurrency and (nxt := self._next()) is not None:
                self._start(nxt)

    def close(self) -> None:
        """Stop the threads once the jobs running are done; waiting jobs are dropped."""
        self._queues.clear()
        self.waiting = 0
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _next(self) -> _Job | None:
        """The first job of the key whose turn it is (skipping keys whose next job's account
        has a job running, unless all do); that key goes to the back of the line."""
        if not self._queues:
            return None
        chosen = next(iter(self._queues))
        for key, queue in self._queues.items():
            account = queue[0].account
            if account is None or account not in self._accounts:
                chosen = key
                break
        queue = self._queues[chosen]
        item = queue.popleft()
        if queue:
            self._queues.move_to_end(chosen)
        else:
            del self._queues[chosen]
        self.waiting -= 1
        return item

    def _start(self, item: _Job) -> None:
        self.running += 1
        if item.account is not None:
            self._accounts[item.account] = self._accounts.get(item.account, 0) + 1
        started = time.monotonic()
        future = self.loop.run_in_executor(self._executor, _run, item.job)
        future.add_done_callback(lambda f: self._finished(f, item, started))

    def _finished(self, future: asyncio.Future[Any], item: _Job, started: float) -> None:
        self.running -= 1
        done = item.done
        if item.account is not None:
            left = self._accounts[item.account] - 1
            if left:
                self._accounts[item.account] = left
            else:
                del self._accounts[item.account]
        self._average = 0.8 * self._average + 0.2 * (time.monotonic() - started)
        nxt = self._next()
        if nxt is not None:
            self._start(nxt)
        if future.cancelled():
            return  # the loop is shutting down
        try:
            done(future.result(), time.time())
        except Exception:  # a bug in a completion must not stop the worker
            log.exception("account job completion failed")
