"""Emit -> processed -> final record, on a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

import pytest

from django_remq.core import TaskManager
from django_remq.core.errors import UnknownEventWarning
from django_remq.core.store.keys import Keys

from .cluster import on_both
from .records import record

pytestmark = pytest.mark.redis


@on_both()
async def test_async_handler_completes_with_result_logs_and_progress(make_tm, r, prefix):
    tm: TaskManager = make_tm(concurrency=2)

    async def report(task, ctx):
        task.logger("started")
        ctx.socket.update({"step": "fetching"}, 50)
        await asyncio.sleep(0)
        task.logger({"rows": 3})
        return {"sum": sum(task.data["values"])}

    tm.register_handler(event="report", handler=report)
    job_id = tm.emit("report", data={"values": [1, 2, 3]})
    assert record(r, prefix, job_id).status == "waiting"
    await tm.run(burst=True)
    job = record(r, prefix, job_id)
    assert job.status == "completed"
    assert job.result == {"sum": 6}
    assert [log.message for log in job.logs] == ["started", '{"rows":3}']
    assert job.progress == {"data": {"step": "fetching"}, "progress": 50}
    assert job.state.name == "report"
    assert job.state.data == {"values": [1, 2, 3]}
    assert job.finished_at
    assert job.last_run
    assert job.finished_at >= job.last_run >= job.timestamp
    # acknowledged and deleted: the stream keeps only unacknowledged entries
    assert r.xlen(Keys(prefix).queue("default").stream) == 0


async def test_sync_handler_runs_in_a_thread(make_tm, r, prefix):
    import threading

    tm: TaskManager = make_tm(concurrency=2)
    threads = []

    def work(task, ctx):
        threads.append(threading.current_thread().name)
        task.logger("in a thread")
        return task.data * 2

    tm.register_handler(event="work", handler=work)
    ids = [tm.emit("work", data=i) for i in range(4)]
    await tm.run(burst=True)
    assert [record(r, prefix, i).result for i in ids] == [0, 2, 4, 6]
    assert all(name.startswith("remq-task") for name in threads)
    assert record(r, prefix, ids[0]).logs[0].message == "in a thread"


async def test_concurrency_bound_holds(make_tm):
    tm: TaskManager = make_tm(concurrency=3)
    running = 0
    peak = 0

    async def slow(task, ctx):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    tm.register_handler(event="slow", handler=slow)
    tm.emit_many({"event": "slow", "data": i} for i in range(12))
    await tm.run(burst=True)
    assert peak == 3


async def test_sync_handlers_respect_the_bound_too(make_tm):
    import threading

    tm: TaskManager = make_tm(concurrency=2)
    lock = threading.Lock()
    running = peak = 0

    def slow(task, ctx):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    tm.register_handler(event="slow", handler=slow)
    tm.emit_many({"event": "slow"} for _ in range(6))
    await tm.run(burst=True)
    assert peak == 2


async def test_unknown_event_fails_naming_the_registered_handlers(make_tm, r, prefix):
    tm: TaskManager = make_tm()

    async def known(task, ctx):
        return None

    tm.register_handler(event="known", handler=known)
    with pytest.warns(UnknownEventWarning):
        job_id = tm.emit("nobody-handles-this")
    await tm.run(burst=True)
    job = record(r, prefix, job_id)
    assert job.status == "failed"
    assert "nobody-handles-this" in job.errors[0].message
    assert "known" in job.errors[0].message
    assert job.errors[0].type == "UnknownEvent"


async def test_failure_records_error_type_and_traceback(make_tm, r, prefix):
    tm: TaskManager = make_tm()

    def broken(task, ctx):
        raise KeyError("missing-thing")

    tm.register_handler(event="broken", handler=broken)
    job_id = tm.emit("broken")
    await tm.run(burst=True)
    job = record(r, prefix, job_id)
    assert job.status == "failed"
    assert job.errors[0].type == "KeyError"
    assert "missing-thing" in job.errors[0].message
    assert "raise KeyError" in job.errors[0].traceback


@on_both()
async def test_follow_up_emit_from_a_handler(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    seen = []

    async def first(task, ctx):
        ctx.emit(event="second", data={"from": task.name})

    def second(task, ctx):
        seen.append(task.data)
        ctx.emit(event="third", data=1)  # from a thread: the sync path

    async def third(task, ctx):
        seen.append("third")

    for name, fn in (("first", first), ("second", second), ("third", third)):
        tm.register_handler(event=name, handler=fn)
    tm.emit("first")
    await tm.run(burst=True)
    assert seen == [{"from": "first"}, "third"]


async def test_user_ctx_entries_reach_the_handler(make_tm):
    tm: TaskManager = make_tm(ctx={"greeting": "hi"})
    got = []

    async def hello(task, ctx):
        got.append((ctx.greeting, ctx["greeting"], dict(ctx)))

    tm.register_handler(event="hello", handler=hello)
    tm.emit("hello")
    await tm.run(burst=True)
    assert got == [("hi", "hi", {"greeting": "hi"})]


@on_both()
async def test_aemit_and_emit_many_return_ids_in_order(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    first = await tm.aemit("x", data=1)
    ids = tm.emit_many([{"event": "x", "data": i} for i in range(2500)])
    more = await tm.aemit_many([{"event": "x", "data": "a"}, {"event": "x", "queue": "other"}])
    assert len(ids) == 2500
    assert len(set(ids)) == 2500
    assert record(r, prefix, ids[1234]).state.data == 1234
    assert record(r, prefix, first).state.data == 1
    assert record(r, prefix, more[1], queue="other").state.queue == "other"
    assert r.zcard(Keys(prefix).queue("default").status("waiting")) == 2502
    assert set(r.smembers(Keys(prefix).queues)) == {"default", "other"}


@pytest.mark.parametrize("bad", [[{"data": 1}], [{"event": "x", "dta": 1}]])
def test_emit_many_rejects_bad_items(make_tm, bad):
    tm: TaskManager = make_tm()
    with pytest.raises(ValueError, match="emit_many item 0"):
        tm.emit_many(bad)


async def test_stop_is_prompt_while_the_worker_is_busy(make_tm):
    """Regression: a client library that swallows task cancellation (redis-py 8.0/8.1
    does) must not make a worker's stop hang."""
    import random

    tm: TaskManager = make_tm(concurrency=4, processor={"claim_idle_ms": 300})

    async def busy(task, ctx):
        await asyncio.sleep(0.001)

    tm.register_handler(event="busy", handler=busy)
    for _ in range(8):
        tm.emit_many({"event": "busy"} for _ in range(200))
        stop = asyncio.Event()
        runner = asyncio.create_task(tm.run(stop_event=stop))
        await asyncio.sleep(0.05 + random.random() * 0.1)
        stop.set()
        t0 = time.monotonic()
        await asyncio.wait_for(runner, 10)
        assert time.monotonic() - t0 < 6


async def test_the_shutdown_timeout_counts_the_loops_slow_stop(make_tm, caplog):
    """A worker loop slow to stop (a busy host; a client call that holds on to a cancel,
    or loses it) spends the shutdown timeout, it does not add to it, and is cancelled
    again; the slow loops are named."""
    tm: TaskManager = make_tm(concurrency=2, processor={"shutdown_timeout_ms": 1000})
    started = asyncio.Event()

    async def stuck(task, ctx):
        started.set()
        await asyncio.sleep(60)

    tm.register_handler(event="stuck", handler=stuck)
    tm.emit("stuck")
    await tm.start()
    assert tm.processor is not None
    consumer = tm.processor.consumer

    async def holds_on():  # as a loop whose client call swallows the cancel for 1.5 s
        while True:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                await asyncio.sleep(1.5)
                return

    async def swallows():  # as redis-py 5.2 under Python 3.11 could: the cancel is lost,
        with contextlib.suppress(asyncio.CancelledError):  # and the loop sleeps its
            await asyncio.sleep(60)  # interval (claim_idle_ms / 3) before it looks again
        await asyncio.sleep(30)

    consumer._tasks.append(asyncio.create_task(holds_on(), name="remq-slowpoke"))
    consumer._tasks.append(asyncio.create_task(swallows(), name="remq-sleeper"))
    await asyncio.wait_for(started.wait(), 10)
    t0 = time.monotonic()
    await tm.stop()
    took = time.monotonic() - t0
    # without the budget: 1.5 s for the loop, then 1 s more for the task
    assert took < 2.2, f"stopped in {took:.2f} s, past the 1 s shutdown timeout + slack"
    # named (on a loaded host the read loop may be slow too: it is named beside it)
    assert re.search(r"worker loops slow to stop: [a-z, -]*remq-sleeper, [a-z, -]*"
                     r"remq-slowpoke[a-z, -]* \(stopped\)", caplog.text), caplog.text


@on_both()
@pytest.mark.timeout(40)
async def test_follow_up_emits_beside_logs_and_progress_do_not_wedge_the_task(make_tm, r, prefix):
    # The README's first handler. Since Python 3.12, awaiting gather() over futures that
    # are all done does not yield to the loop, so a drain that waited for the futures'
    # done-callbacks to empty its set spun for ever at 100 % CPU (the task never acked).
    tm: TaskManager = make_tm(concurrency=1)

    async def report(task, ctx):
        task.logger("started")
        ctx.socket.update({"step": "fetching"}, 33)
        for n in range(3):
            ctx.emit(event="notify", data={"n": n})
        return {"rows": 42}

    async def notify(task, ctx):
        task.logger(f"notified {task.data['n']}")

    tm.register_handler(event="report", handler=report)
    tm.register_handler(event="notify", handler=notify)
    ids = [tm.emit("report", data={"id": i}) for i in range(10)]
    await asyncio.wait_for(tm.run(burst=True), timeout=20)
    assert {record(r, prefix, i).status for i in ids} == {"completed"}
    assert len(list(r.scan_iter(f"{prefix}:*:job:*"))) == 10 + 30
