"""Plain ``def`` handlers: slot threads, abandoned calls, the cap, shutdown (in-process
where the behaviour is the engine's; in a worker process where it is the process's)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from django_remq.core import SyncThreadsExhausted, TaskManager
from django_remq.core.sdk import Sdk
from django_remq.core.store.keys import GROUP, Keys
from django_remq.core.worker.threads import SlotThreads

from .workers import wait_until

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parent.parent


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def remq_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("remq-task")]


# -- SlotThreads on its own ----------------------------------------------------------


async def test_slot_threads_replace_an_abandoned_call_and_skip_a_cancelled_one():
    threads = SlotThreads(1)
    release = threading.Event()
    ran: list[str] = []

    def block() -> str:
        release.wait(30)
        ran.append("block")
        return "late"

    first = threads.submit(block)
    queued = threads.submit(ran.append, "never")
    await until(lambda: threads.abandoned == 0 and first.state == 1)  # RUNNING
    threads.abandon(queued)  # not started: it never will be
    threads.abandon(first)  # running: its thread is written off and replaced
    assert (threads.abandoned, threads.live_threads) == (1, 1)
    after = threads.submit(lambda: "fresh")
    assert await asyncio.wait_for(after.future, 10) == "fresh"
    release.set()
    await until(lambda: threads.abandoned == 0)
    assert ran == ["block"]
    assert not first.future.done()  # an abandoned call's result goes nowhere
    threads.close()
    await until(lambda: not remq_threads())


async def test_slot_threads_turn_system_exit_into_a_failure():
    threads = SlotThreads(1)

    def bail() -> None:
        sys.exit(3)

    with pytest.raises(RuntimeError, match="SystemExit"):
        await asyncio.wait_for(threads.submit(bail).future, 10)
    assert await asyncio.wait_for(threads.submit(lambda: 1).future, 10) == 1
    threads.close()


# -- the engine ------------------------------------------------------------------------


async def test_sync_handlers_past_their_timeout_do_not_wedge_the_worker(make_tm, r, prefix):
    tm: TaskManager = make_tm(concurrency=2)
    release = threading.Event()

    def stuck(task, ctx):
        release.wait(60)

    def quick(task, ctx):
        return task.data

    async def aquick(task, ctx):
        return task.data

    tm.register_handler(event="stuck", handler=stuck, options={"timeout_ms": 300})
    tm.register_handler(event="quick", handler=quick, options={"timeout_ms": 5000})
    tm.register_handler(event="aquick", handler=aquick)
    sdk = Sdk(r, prefix=prefix)
    stuck_ids = [tm.emit("stuck") for _ in range(2)]
    await tm.start()
    try:
        await until(lambda: all(sdk.get_job(i, "default").status == "failed" for i in stuck_ids))
        later = [tm.emit("quick", data=n) for n in range(4)] + [
            tm.emit("aquick", data=n) for n in range(2)]
        await until(lambda: all(sdk.get_job(i, "default").status == "completed" for i in later))
        assert [sdk.get_job(i, "default").result for i in later] == [0, 1, 2, 3, 0, 1]
        for job_id in stuck_ids:
            assert sdk.get_job(job_id, "default").errors[-1].type == "TaskTimeout"
        processor = tm.processor
        assert processor is not None
        assert (processor.threads.abandoned, processor.threads.live_threads) == (2, 2)
        assert processor.consumer.running == {}  # nothing left for the heartbeat to renew
        qk = Keys(prefix).queue("default")
        assert r.xpending(qk.stream, GROUP)["pending"] == 0
    finally:
        release.set()
        await tm.stop()


async def test_more_stuck_sync_handlers_than_the_cap_stop_the_worker(make_tm, r, prefix, caplog):
    tm: TaskManager = make_tm(concurrency=1)
    release = threading.Event()

    def stuck(task, ctx):
        release.wait(60)

    tm.register_handler(event="stuck", handler=stuck, options={"timeout_ms": 200})
    ids = [tm.emit("stuck") for _ in range(2)]
    waiting = tm.emit("stuck")
    try:
        with pytest.raises(SyncThreadsExhausted, match="2 sync handlers are still running"):
            await asyncio.wait_for(tm.run(), 30)
    finally:
        release.set()
    assert "Python cannot stop a thread" in caplog.text
    sdk = Sdk(r, prefix=prefix)
    assert [sdk.get_job(i, "default").status for i in ids] == ["failed", "failed"]
    assert sdk.get_job(waiting, "default").status == "waiting"  # left for a fresh worker


async def test_processor_stop_then_wait_for_active_tasks(make_tm, r, prefix):
    tm: TaskManager = make_tm(concurrency=2)

    def nap(task, ctx):
        time.sleep(0.5)
        return "rested"

    tm.register_handler(event="nap", handler=nap)
    sdk = Sdk(r, prefix=prefix)
    first = tm.emit("nap")
    await tm.start()
    processor = tm.processor
    assert processor is not None
    try:
        await until(lambda: sdk.get_job(first, "default").status == "processing")
        processor.stop()  # takes no new work; what runs goes on
        # let the cancelled blocking read go first: a sync emit on this very loop could
        # otherwise wake the read before the cancel lands (the entry would then wait,
        # delivered but not run, for the hand-back at close)
        await asyncio.sleep(0.1)
        second = tm.emit("nap")
        assert await processor.wait_for_active_tasks(20)
        assert sdk.get_job(first, "default").result == "rested"
        await asyncio.sleep(0.3)
        assert sdk.get_job(second, "default").status == "waiting"
        assert remq_threads()
        processor.cleanup()  # idle slot threads leave
        await until(lambda: not remq_threads(), timeout=10)
    finally:
        await tm.stop()


# -- in a worker process -------------------------------------------------------------------


def spawn(url: str, prefix: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.sync_worker", url, prefix, *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    return proc


def stop_within(proc: subprocess.Popen[str], seconds: float) -> tuple[float, str, str]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"the worker did not exit within {seconds}s of SIGTERM:\n{err[-3000:]}")
    return time.monotonic() - started, out, err


def test_sigterm_stops_a_worker_whose_sync_handlers_are_stuck(redis_url, r, prefix, make_tm):
    tm: TaskManager = make_tm()
    sdk = Sdk(r, prefix=prefix)
    stuck = [tm.emit("stuck") for _ in range(2)]
    proc = spawn(redis_url, prefix, "--concurrency", "2", "--timeout-ms", "300")
    try:
        assert wait_until(lambda: all(sdk.get_job(i, "default").status == "failed"
                                      for i in stuck), timeout=30)
        quick = tm.emit("quick", data="still serving")
        assert wait_until(lambda: sdk.get_job(quick, "default").status == "completed",
                          timeout=30)
        _, out, err = stop_within(proc, 15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "EXITED" in out


def test_shutdown_timeout_records_what_finished_and_hands_back_the_rest(redis_url, r, prefix,
                                                                        make_tm):
    tm: TaskManager = make_tm()
    short = [tm.emit("nap", data={"s": 1.0}) for _ in range(2)]
    long = [tm.emit("nap", data={"s": 120}) for _ in range(2)]
    proc = spawn(redis_url, prefix, "--concurrency", "4", "--shutdown-timeout-ms", "3000",
                 "--claim-idle-ms", "30000")
    try:
        assert wait_until(lambda: r.llen(f"{prefix}:started") == 4, timeout=30)
        elapsed, _, err = stop_within(proc, 20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert elapsed < 15, f"exit took {elapsed:.1f}s after SIGTERM"
    sdk = Sdk(r, prefix=prefix)
    assert [sdk.get_job(i, "default").result for i in short] == ["rested", "rested"]
    assert [sdk.get_job(i, "default").status for i in long] == ["processing", "processing"]
    qk = Keys(prefix).queue("default")
    pending = r.xpending_range(qk.stream, GROUP, "-", "+", 10)
    assert len(pending) == 2
    # handed back: reclaimable at once, not after claim_idle_ms
    assert all(p["time_since_delivered"] >= 30_000 for p in pending)
    assert sorted(r.lrange(f"{prefix}:started", 0, -1)) == sorted(short + long)  # ran once each
