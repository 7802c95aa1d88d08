"""Where slow account work runs: argon2 hashing and checking (~50-200 ms of CPU each).

The core is synchronous and must never block, so a command that needs a hash hands a *job* (a
function of no arguments, run in a thread) and a *done* callback to a :class:`Worker`. The done
callback runs later on the core's thread with the job's result and the time, and finishes the
command: it sends the replies itself, with a fresh ``Replies`` (see ``accounts/service.py``).

- :class:`ThreadWorker` is the server's: jobs run on the event loop's default executor, at most
  ``concurrency`` at once (argon2 takes 64 MiB each), at most ``max_pending`` waiting; ``done``
  runs on the loop thread.
- :class:`InlineWorker` runs the job at once (in-memory tests and tools).
- :class:`QueueWorker` keeps jobs until :meth:`QueueWorker.run_pending` (tests of what happens
  while a check is in flight).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

__all__ = ["Done", "InlineWorker", "QueueWorker", "ThreadWorker", "Worker"]

log = logging.getLogger("relaychat.accounts")

T = TypeVar("T")

#: A job's completion: called on the core's thread with the job's result (``None`` when the job
#: raised; the worker has logged it) and the current time.
Done = Callable[[T | None, float], None]


class Worker(Protocol):
    """Runs blocking jobs away from the core and reports back on its thread."""

    def submit(self, job: Callable[[], T], done: Done[T]) -> bool:
        """Run ``job`` somewhere, then ``done(result, now)`` on the core's thread.

        Returns:
            ``False`` when the worker is too busy to take the job (``done`` will not be called);
            the caller tells the client to try again.
        """
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

    def submit(self, job: Callable[[], T], done: Done[T]) -> bool:
        done(_run(job), self.clock())
        return True


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

    def submit(self, job: Callable[[], T], done: Done[T]) -> bool:
        if len(self.jobs) >= self.limit:
            return False
        self.jobs.append((job, done))
        return True

    def run_pending(self) -> int:
        """Run every queued job (and any they queue) and its ``done``; return how many ran."""
        count = 0
        while self.jobs:
            job, done = self.jobs.popleft()
            done(_run(job), self.clock())
            count += 1
        return count


class ThreadWorker:
    """Runs jobs on the event loop's default executor, a bounded number at a time.

    Args:
        loop: the server's event loop; ``done`` callbacks run on it.
        concurrency: jobs running at once (each argon2 check holds 64 MiB while it runs).
        max_pending: jobs waiting for a thread before :meth:`submit` says it is busy.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, concurrency: int = 2, max_pending: int = 64
    ) -> None:
        self.loop = loop
        self.concurrency = concurrency
        self.max_pending = max_pending
        self.running = 0
        self.waiting: deque[tuple[Callable[[], Any], Done[Any]]] = deque()

    def submit(self, job: Callable[[], T], done: Done[T]) -> bool:
        if self.running < self.concurrency:
            self._start(job, done)
            return True
        if len(self.waiting) >= self.max_pending:
            log.warning("account worker busy: %d jobs waiting", len(self.waiting))
            return False
        self.waiting.append((job, done))
        return True

    def _start(self, job: Callable[[], T], done: Done[T]) -> None:
        self.running += 1
        future = self.loop.run_in_executor(None, _run, job)
        future.add_done_callback(lambda f: self._finished(f, done))

    def _finished(self, future: asyncio.Future[Any], done: Done[Any]) -> None:
        self.running -= 1
        if self.waiting:
            self._start(*self.waiting.popleft())
        if future.cancelled():
            return  # the loop is shutting down
        try:
            done(future.result(), time.time())
        except Exception:  # a bug in a completion must not stop the worker
            log.exception("account job completion failed")
