"""Where argon2 runs: the thread worker is bounded and reports back on the loop's thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

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
    assert worker.running == 1 and worker.waiting == 1
    assert worker.retry_after() >= 1.0
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


async def test_fair_share_round_robin_across_addresses() -> None:
    """Issue 17 item 4: one address's queue never starves another's; its share is bounded."""
    loop = asyncio.get_running_loop()
    worker = ThreadWorker(loop, concurrency=1, max_pending=64, per_key=3)
    release = threading.Event()
    order: list[str] = []
    finished = asyncio.Event()

    def job(name: str) -> Callable[[], str]:
        def run() -> str:
            if name == "first":
                release.wait(TIMEOUT)
            return name

        return run

    def done(result: str | None, now: float) -> None:
        assert result is not None
        order.append(result)
        if len(order) == 6:
            finished.set()

    assert worker.submit(job("first"), done, key="attacker")  # runs at once
    for n in range(3):
        assert worker.submit(job(f"a{n}"), done, key="attacker")
    assert not worker.submit(job("a3"), done, key="attacker")  # over its share: refused
    assert worker.submit(job("b0"), done, key="bystander")  # another address still gets in
    assert worker.submit(job("c0"), done, key="third")
    release.set()
    await asyncio.wait_for(finished.wait(), TIMEOUT)
    assert order == ["first", "a0", "b0", "c0", "a1", "a2"]


async def test_one_account_does_not_take_every_thread() -> None:
    loop = asyncio.get_running_loop()
    worker = ThreadWorker(loop, concurrency=2, max_pending=64, per_key=4)
    release = threading.Event()
    started: list[str] = []
    finished = asyncio.Event()

    def job(name: str) -> Callable[[], str]:
        def run() -> str:
            started.append(name)
            if name == "x-running":
                release.wait(TIMEOUT)
            return name

        return run

    def done(result: str | None, now: float) -> None:
        if len(started) == 4:
            finished.set()

    worker.submit(job("x-running"), done, key="k1", account="victim")
    worker.submit(job("block"), done, key="k0")  # takes the second thread briefly
    worker.submit(job("x-next"), done, key="k2", account="victim")  # same account: waits
    worker.submit(job("y"), done, key="k3", account="owner")
    async with asyncio.timeout(TIMEOUT):
        while "y" not in started:  # the victim's check still runs: y goes before x-next
            await asyncio.sleep(0.01)
    release.set()
    await asyncio.wait_for(finished.wait(), TIMEOUT)
    # k2 was first in line, but its account had a check running: k3 went first.
    assert started.index("y") < started.index("x-next")


async def test_worker_threads_run_at_a_lower_priority() -> None:
    """argon2 must not take the event loop's core from it (issue 17 items 2-4)."""
    import os

    from relaychat.accounts.worker import WORKER_NICE

    loop = asyncio.get_running_loop()
    worker = ThreadWorker(loop, concurrency=1)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    got: asyncio.Future[int | None] = loop.create_future()

    def job() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    worker.submit(job, lambda result, now: got.set_result(result))
    assert await asyncio.wait_for(got, TIMEOUT) == min(19, mine + WORKER_NICE)
    worker.close()
