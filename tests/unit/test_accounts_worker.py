"""Where argon2 runs: the thread worker is bounded and reports back on the loop's thread."""

from __future__ import annotations

import asyncio
import threading

from relaychat.accounts.worker import InlineWorker, QueueWorker, ThreadWorker
from tests.harness import TIMEOUT


async def test_thread_worker_runs_off_the_loop_and_reports_on_it() -> None:
    loop = asyncio.get_running_loop()
    worker = ThreadWorker(loop, concurrency=1, max_pending=1)
    release = threading.Event()
    results: list[tuple[object, bool]] = []
    finished = asyncio.Event()
    loop_thread = threading.get_ident()

    def done(result: object, now: float) -> None:
        results.append((result, threading.get_ident() == loop_thread))
        if len(results) == 2:
            finished.set()

    def slow() -> str:
        assert threading.get_ident() != loop_thread
        release.wait(TIMEOUT)
        return "slow"

    assert worker.submit(slow, done)  # runs
    assert worker.submit(lambda: "queued", done)  # waits for a thread
    assert not worker.submit(lambda: "refused", done)  # over max_pending: the caller says busy
    assert worker.running == 1 and len(worker.waiting) == 1
    release.set()
    await asyncio.wait_for(finished.wait(), TIMEOUT)
    assert results == [("slow", True), ("queued", True)]
    assert worker.running == 0 and not worker.waiting


async def test_a_failing_job_reports_none() -> None:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[object] = loop.create_future()

    def boom() -> str:
        raise RuntimeError("bug")

    ThreadWorker(loop).submit(boom, lambda result, now: got.set_result(result))
    assert await asyncio.wait_for(got, TIMEOUT) is None


def test_inline_and_queue_workers() -> None:
    seen: list[tuple[object, float]] = []
    assert InlineWorker(lambda: 7.0).submit(lambda: 1, lambda r, now: seen.append((r, now)))
    assert seen == [(1, 7.0)]
    queue = QueueWorker(lambda: 8.0, limit=1)
    assert queue.submit(lambda: 2, lambda r, now: seen.append((r, now)))
    assert not queue.submit(lambda: 3, lambda r, now: seen.append((r, now)))
    assert seen == [(1, 7.0)]
    assert queue.run_pending() == 1
    assert seen == [(1, 7.0), (2, 8.0)]
