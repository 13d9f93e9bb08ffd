"""The default CPU affinity (``"threads"``): the event loop and the plain ``def``
handlers' slot threads share one CPU core, and what a handler starts -- a program, a
thread, a library's threads, a long native call -- gets every CPU. Checked on real
threads and processes through the kernel's affinity calls."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk
from django_remq.core.worker.shared_core import SUPPORTED, SharedCore

from .test_engine_sync_threads import until

ALL = frozenset(os.sched_getaffinity(0)) if SUPPORTED else frozenset()

pytestmark = [pytest.mark.processes, pytest.mark.skipif(
    not SUPPORTED or len(ALL) < 2, reason="per-thread CPU affinity needs Linux and 2 CPUs")]


@pytest.fixture
def own_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A lock folder of the test's own: the test's workers claim cores no matter what the
    worker processes of other tests hold."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path / "django-remq-cpus"


def on_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` on a thread of its own (what it pins stays there)."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


async def result_of_one(tm: TaskManager, r: Any, prefix: str, event: str) -> Any:
    """Run one job of ``event`` on ``tm``'s worker (started and stopped here)."""
    job = tm.emit(event)
    sdk = Sdk(r, prefix=prefix)
    await tm.start()
    try:
        await until(lambda: sdk.get_job(job, "default").status == "completed")
    finally:
        await tm.stop()
    return sdk.get_job(job, "default").result


def cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


async def test_sync_handlers_share_a_core_and_what_they_start_gets_every_cpu(
        make_tm, r, prefix, own_locks):
    tm: TaskManager = make_tm(concurrency=1)  # one slot thread: the jobs run in order on it

    def where(task, ctx):
        return cpus()

    def spawn(task, ctx):  # a program the handler starts (ffmpeg, a compressor...)
        out = subprocess.run([sys.executable, "-c", "import os, json; "
                              "print(json.dumps(sorted(os.sched_getaffinity(0))))"],
                             capture_output=True, text=True, check=True).stdout
        return {"child": json.loads(out), "after": cpus()}

    def start_thread(task, ctx):  # a thread pool, a library's worker thread
        seen: list[list[int]] = []

        def sample() -> None:
            seen.append(cpus())
            time.sleep(1.2)  # 3.11 has no audit event for it: the watch lets it go
            seen.append(cpus())

        t = threading.Thread(target=sample)
        t.start()
        t.join()
        return seen

    def long(task, ctx):  # a long native call (numpy, hashing a file...)
        time.sleep(0.3)
        return cpus()

    async def on_loop(task, ctx):
        return cpus()

    async def spawn_on_loop(task, ctx):  # an async handler that starts a program
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import os, json; "
            "print(json.dumps(sorted(os.sched_getaffinity(0))))", stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        return json.loads(out)

    for name, fn in [("where", where), ("spawn", spawn), ("thread", start_thread),
                     ("long", long), ("on_loop", on_loop), ("spawn_on_loop", spawn_on_loop)]:
        tm.register_handler(event=name, handler=fn)
    order = ["where", "spawn", "where", "thread", "where", "long", "where", "on_loop",
             "spawn_on_loop", "on_loop"]
    ids = [tm.emit(name) for name in order]
    sdk = Sdk(r, prefix=prefix)
    await tm.start()
    try:
        await until(lambda: all(sdk.get_job(i, "default").status == "completed" for i in ids))
        core = tm.processor.threads.core  # type: ignore[union-attr]
        assert core is not None
        assert core.cpu is not None
        held = core.cpu
        assert (own_locks / f"cpu-{held}.lock").exists()
    finally:
        await tm.stop()
    results = dict(enumerate(sdk.get_job(i, "default").result for i in ids))
    pinned = [held]
    assert results[0] == pinned  # a sync handler: on the core
    assert results[1]["child"] == sorted(ALL)  # the program it started: every CPU
    assert results[1]["after"] == sorted(ALL)  # and so the rest of that call
    assert results[2] == pinned  # the next call: back on the core
    if sys.version_info >= (3, 12):
        assert results[3][0] == sorted(ALL)  # a thread it started: every CPU from its start
    assert results[3][1] == sorted(ALL)
    assert results[4] == pinned
    assert results[5] == sorted(ALL)  # past LONG_CALL_S: every CPU
    assert results[6] == pinned
    assert results[7] == pinned  # the loop shares the core
    assert results[8] == sorted(ALL)  # a program an async handler starts: every CPU
    assert results[9] == pinned  # and the loop is back on the core
    assert cpus() == sorted(ALL)  # stopped: the loop's thread is let go
    other = SharedCore()
    assert on_thread(lambda: (other.start(), other.cpu)) == (True, held)  # and the lock
    other.stop()


async def test_pin_threads_false_leaves_them_alone(make_tm, r, prefix, own_locks):
    tm: TaskManager = make_tm(concurrency=1, processor={"pin_threads": False})
    tm.register_handler(event="where", handler=lambda task, ctx: cpus())
    assert await result_of_one(tm, r, prefix, "where") == sorted(ALL)
    assert not own_locks.exists()  # nothing claimed


async def test_an_async_only_worker_claims_no_core(make_tm, r, prefix, own_locks):
    tm: TaskManager = make_tm(concurrency=2)

    async def where(task, ctx):
        return cpus()

    tm.register_handler(event="where", handler=where)
    assert await result_of_one(tm, r, prefix, "where") == sorted(ALL)


def test_workers_of_one_host_claim_different_cores(own_locks):
    cores = [SharedCore() for _ in range(len(ALL) + 1)]
    started = [on_thread(lambda c=c: (c.start(), c.cpu, cpus())) for c in cores]
    try:
        claimed = [cpu for ok, cpu, mask in started[:-1]]
        assert sorted(claimed) == sorted(ALL)  # one core each
        assert all(mask == [cpu] for _, cpu, mask in started[:-1])  # pinned to it
        assert started[-1] == (False, None, sorted(ALL))  # none left: not pinned
        cores[0].stop()
        late = cores[-1]
        assert on_thread(lambda: (late.start(), late.cpu)) == (True, claimed[0])
    finally:
        for c in cores:
            c.stop()


def test_threads_a_library_starts_from_a_pinned_thread_are_let_go(own_locks):
    core = SharedCore()
    release = threading.Event()
    ids: dict[str, int] = {}

    def pinned_then_starts_one() -> None:
        core.start()
        ids["ours"] = threading.get_native_id()

        def library_thread() -> None:  # as a C library's pool would: inherits the mask
            ids["stranger"] = threading.get_native_id()
            release.wait(30)

        threading.Thread(target=library_thread).start()

    try:
        on_thread(pinned_then_starts_one)
        deadline = time.monotonic() + 10
        while "stranger" not in ids:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert os.sched_getaffinity(ids["stranger"]) == {core.cpu}  # inherited
        core.free_strangers()
        assert os.sched_getaffinity(ids["stranger"]) == ALL
    finally:
        release.set()
        core.stop()


@pytest.fixture
def spinner() -> Iterator[Callable[[int], subprocess.Popen[bytes]]]:
    """Busy processes pinned to a CPU (other services crowding a core)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(cpu: int) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_crowded_core_is_left_for_a_quiet_one_or_given_up(own_locks, spinner):
    core = SharedCore()
    release = threading.Event()
    tid: list[int] = []

    def loop_thread() -> None:  # stands for the worker's loop: pinned, then waits
        core.start()
        tid.append(threading.get_native_id())
        release.wait(60)

    thread = threading.Thread(target=loop_thread)
    thread.start()
    holder = SharedCore()
    try:
        while not tid:
            time.sleep(0.01)
        first = core.cpu
        assert first is not None
        spinner(first)
        core.check_crowding(coin=lambda: 1.0)  # the first look only takes the counts
        time.sleep(0.6)  # a spinner's whole core: its neighbours feel it
        core.check_crowding(coin=lambda: 1.0)
        assert core.cpu is not None
        assert core.cpu != first  # moved
        assert os.sched_getaffinity(tid[0]) == {core.cpu}
        # the core left is free again; another worker takes it, then the new one is crowded
        assert on_thread(lambda: (holder.start(), holder.cpu)) == (True, first)
        second = core.cpu
        spinner(second)
        core.check_crowding(coin=lambda: 1.0)
        time.sleep(0.6)  # a spinner's whole core: its neighbours feel it
        core.check_crowding(coin=lambda: 1.0)
        if len(ALL) == 2:  # no quieter core free: pinning given up
            assert core.cpu is None
            assert os.sched_getaffinity(tid[0]) == ALL
        else:
            assert core.cpu not in (first, second)
    finally:
        release.set()
        thread.join()
        core.stop()
        holder.stop()


def test_no_lock_folder_means_no_pinning_not_an_error(own_locks):
    own_locks.write_text("a file where the folder should be")  # mkdir fails
    core = SharedCore()
    assert on_thread(lambda: (core.start(), core.cpu, cpus())) == (False, None, sorted(ALL))
