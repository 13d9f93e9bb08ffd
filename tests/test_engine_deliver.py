"""No handler starts before deliver.lua made its job ``processing`` for this worker:
pause, forged entries, corrupt records and orphan entries, on a real Redis."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest

from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk
from django_remq.core.store import calls
from django_remq.core.store.keys import GROUP, Keys
from django_remq.core.store.scripts import run

from .records import record
from .workers import await_until

pytestmark = pytest.mark.redis


def _recorder(tm: TaskManager) -> list[str]:
    ran: list[str] = []

    async def job(task, ctx):
        ran.append(task.id)

    tm.register_handler(event="job", handler=job)
    return ran


async def test_pause_holds_for_an_idle_worker_and_resume_runs_once(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    ran = _recorder(tm)
    stop = asyncio.Event()
    runner = asyncio.create_task(tm.run(stop_event=stop))
    try:
        await asyncio.sleep(0.5)  # the worker sits in its blocking read
        await tm.apause_queue("default")
        job_id = await tm.aemit("job")
        await asyncio.sleep(2.0)
        assert ran == []  # paused from the moment pause_queue returned
        assert record(r, prefix, job_id).status == "waiting"
        await tm.aresume_queue("default")
        assert await await_until(lambda: ran == [job_id])
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await runner
    assert ran == [job_id]  # once, not again after resume
    assert record(r, prefix, job_id).status == "completed"


async def test_forged_or_replayed_entries_never_run(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    ran = _recorder(tm)
    done = tm.emit("job", data={"n": 1})
    await tm.run(burst=True)
    assert ran == [done]
    qk = Keys(prefix).queue("default")
    stop = asyncio.Event()
    runner = asyncio.create_task(tm.run(stop_event=stop))
    try:
        await asyncio.sleep(0.5)  # idle, in its blocking read
        entry = {"id": done, "name": "job", "data": '{"n":1}', "options": "{}",
                 "retried_attempts": "0", "timestamp": "1"}
        r.xadd(qk.stream, entry)  # a replay of the completed job's entry
        r.xadd(qk.stream, {**entry, "id": "never-emitted"})  # a forged one
        assert await await_until(lambda: r.xlen(qk.stream) == 0, timeout=5)
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await runner
    assert ran == [done]
    assert record(r, prefix, done).status == "completed"
    assert r.xpending(qk.stream, GROUP)["pending"] == 0


async def test_cancelled_job_entry_never_runs(make_tm, redis_url, r, prefix):
    """A job cancelled after its entry was written (entry left behind) does not run."""
    tm: TaskManager = make_tm()
    ran = _recorder(tm)
    qk = Keys(prefix).queue("default")
    job_id = tm.emit("job")
    entry = r.xrange(qk.stream)[0][1]
    assert Sdk(redis_url, prefix=prefix).cancel_job(job_id, "default")
    stop = asyncio.Event()
    runner = asyncio.create_task(tm.run(stop_event=stop))
    try:
        await asyncio.sleep(0.5)
        r.xadd(qk.stream, entry)  # the entry comes back (a replay, a restored AOF...)
        assert await await_until(lambda: r.xlen(qk.stream) == 0, timeout=5)
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await runner
    assert ran == []
    assert record(r, prefix, job_id).status == "cancelled"


async def test_corrupt_record_fails_as_corrupt_and_the_batch_goes_on(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={"dlq": {}})
    ran = _recorder(tm)
    ids = tm.emit_many({"event": "job", "data": i} for i in range(3))
    qk = Keys(prefix).queue("default")
    r.hset(qk.job(ids[1]), "deliveries", "abc")
    await asyncio.wait_for(tm.run(burst=True), 15)
    assert sorted(ran) == sorted([ids[0], ids[2]])  # its batch mates were delivered
    bad = r.hgetall(qk.job(ids[1]))
    assert bad["status"] == "failed"
    assert bad["deliveries"] == "abc"  # kept as found, for inspection
    error = json.loads(bad["errors"])[-1]
    assert error["type"] == "CorruptRecord"
    assert "deliveries" in error["message"]
    assert r.zscore(qk.status("failed"), ids[1]) is not None
    assert r.zscore(qk.status("processing"), ids[1]) is None
    assert r.xlen(qk.stream) == 0
    assert r.xpending(qk.stream, GROUP)["pending"] == 0
    dead = [fields for _, fields in r.xrange(qk.dlq())]  # written with the failure
    assert [(d["id"], d["reason"]) for d in dead] == [(ids[1], "corrupt")]


async def test_record_that_is_not_a_hash_does_not_block_delivery(make_tm, r, prefix, caplog):
    caplog.set_level(logging.WARNING, logger="django_remq")
    tm: TaskManager = make_tm()
    ran = _recorder(tm)
    ids = tm.emit_many({"event": "job", "data": i} for i in range(3))
    qk = Keys(prefix).queue("default")
    r.delete(qk.job(ids[0]))
    r.set(qk.job(ids[0]), "not a hash")
    await asyncio.wait_for(tm.run(burst=True), 15)
    assert sorted(ran) == sorted(ids[1:])
    assert r.get(qk.job(ids[0])) == "not a hash"  # left as found
    assert r.zscore(qk.status("waiting"), ids[0]) is None
    assert r.xlen(qk.stream) == 0
    assert any(ids[0] in m and "not a hash" in m for m in caplog.messages)


async def test_entry_naming_no_job_is_warned_about_and_acked(make_tm, r, prefix, caplog):
    caplog.set_level(logging.WARNING, logger="django_remq")
    tm: TaskManager = make_tm()
    ran = _recorder(tm)
    good = tm.emit("job")
    qk = Keys(prefix).queue("default")
    r.xadd(qk.stream, {"id": "ghost-job", "name": "job"})
    await asyncio.wait_for(tm.run(burst=True), 15)
    assert ran == [good]
    assert r.xlen(qk.stream) == 0
    assert r.xpending(qk.stream, GROUP)["pending"] == 0
    warned = [m for m in caplog.messages if "ghost-job" in m]
    assert len(warned) == 1
    assert "no job" in warned[0]


async def test_burst_treats_a_paused_queue_as_empty(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    ran: list[str] = []

    async def job(task, ctx):
        ran.append(task.id)

    tm.register_handler(event="job", handler=job, queue="held")
    tm.register_handler(event="job", handler=job, queue="open")
    held = tm.emit("job", queue="held")
    tm.pause_queue("held")
    opened = tm.emit("job", queue="open")
    await asyncio.wait_for(tm.run(burst=True), 15)
    assert ran == [opened]
    assert record(r, prefix, held, queue="held").status == "waiting"
    tm.pause_queue("open")  # every queue paused: a burst run ends at once
    await asyncio.wait_for(tm.run(burst=True), 15)
    assert ran == [opened]


async def test_replayed_entry_of_a_running_job_does_not_run_it_again(make_tm, r, prefix):
    """The record names its live entry: a copy read by another worker is dropped."""
    ran: list[str] = []

    async def slow(task, ctx):
        ran.append(task.id)
        await asyncio.sleep(1.5)

    first: TaskManager = make_tm()
    second: TaskManager = make_tm()
    for tm in (first, second):
        tm.register_handler(event="slow", handler=slow)
    qk = Keys(prefix).queue("default")
    job_id = first.emit("slow")
    entry = r.xrange(qk.stream)[0][1]
    stop = asyncio.Event()
    runner = asyncio.create_task(first.run(stop_event=stop))
    other: asyncio.Task[None] | None = None
    try:
        assert await await_until(lambda: ran == [job_id])
        other = asyncio.create_task(second.run(stop_event=stop))  # idle: free to take it
        await asyncio.sleep(0.3)
        r.xadd(qk.stream, entry)  # the same entry again while the job runs on `first`
        assert await await_until(lambda: record(r, prefix, job_id).status == "completed")
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await runner
        if other is not None:
            await other
    assert ran == [job_id]
    assert r.xlen(qk.stream) == 0


async def test_malformed_entry_reaching_an_idle_worker_is_recorded_once(make_tm, r, prefix,
                                                                         caplog):
    caplog.set_level(logging.ERROR, logger="django_remq")
    tm: TaskManager = make_tm()
    _recorder(tm)
    qk = Keys(prefix).queue("default")
    tm.emit("job")
    stop = asyncio.Event()
    runner = asyncio.create_task(tm.run(stop_event=stop))
    try:
        assert await await_until(lambda: r.xlen(qk.stream) == 0)
        bad = r.xadd(qk.stream, {"garbage": "yes"})  # reaches the blocking read
        assert await await_until(lambda: r.hget(qk.job(f"malformed-{bad}"), "status") == "failed")
        await asyncio.sleep(1.5)  # more wake-ups of the idle worker
    finally:
        stop.set()
        await runner
    assert len([m for m in caplog.messages if bad in m]) == 1
    assert r.xlen(qk.stream) == 0
    assert len(json.loads(r.hget(qk.job(f"malformed-{bad}"), "errors"))) == 1


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "9" * 20, ""])
def test_deliver_checks_the_count_before_writing(make_tm, r, prefix, bad):
    tm: TaskManager = make_tm()
    qk = Keys(prefix).queue("default")
    ids = tm.emit_many({"event": "job", "data": i} for i in range(3))
    r.hset(qk.job(ids[0]), "deliveries", bad)
    r.xgroup_create(qk.stream, GROUP, id="0")
    got = run(tm.conn.sync, calls.fetch(qk, "w1", 10, lock_ms=30_000, max_deliveries=5))
    verdicts = {d.job_id: d.verdict for d in got}
    assert verdicts == {ids[0]: "corrupt", ids[1]: "run", ids[2]: "run"}
    corrupt = next(d for d in got if d.verdict == "corrupt")
    assert (corrupt.fields["corrupt_field"], corrupt.fields["corrupt_value"]) == (
        "deliveries", bad)
    assert r.hget(qk.job(ids[0]), "deliveries") == bad  # untouched
    assert r.hget(qk.job(ids[0]), "status") == "processing"  # the worker fails it
    assert [r.hget(qk.job(i), "deliveries") for i in ids[1:]] == ["1", "1"]


async def test_a_pick_up_reads_only_the_new_entries_not_every_running_job(make_tm, r, prefix):
    """deliver.lua's pending mode starts after the last entry the worker was given: with
    20 jobs running, a new job costs one entry read, not 21 (it used to scan every
    entry the worker held, two reads per running job on each pick-up)."""
    tm: TaskManager = make_tm(concurrency=32)
    release = asyncio.Event()
    ran: list[int] = []

    async def hold(task, ctx):
        await release.wait()

    async def quick(task, ctx):
        ran.append(task.data)

    tm.register_handler(event="hold", handler=hold)
    tm.register_handler(event="quick", handler=quick)
    tm.emit_many({"event": "hold"} for _ in range(20))
    await tm.start()
    try:
        sdk = Sdk(r, prefix=prefix)
        assert await await_until(lambda: sdk.get_queue_stats("default").processing == 20)
        await asyncio.sleep(0.3)  # the worker is back in its blocking read
        r.config_resetstat()
        for n in range(10):
            tm.emit("quick", data=n)
            assert await await_until(lambda n=n: len(ran) > n, step=0.01), n
        reads = r.info("commandstats").get("cmdstat_xrange", {}).get("calls", 0)
        assert ran == list(range(10))
        assert reads <= 20, f"{reads} entry reads for 10 pick-ups beside 20 running jobs"
    finally:
        release.set()
        await tm.stop()


async def test_a_picked_up_job_starts_before_the_next_fetch_is_sent(make_tm):
    """An idle worker's blocking read wakes with a job: the job starts at once, and only
    then does the read loop send its next (non-blocking) fetch. It used to send the fetch
    first, which put a round trip's preparation ahead of every pick-up (about 60 us)."""
    tm: TaskManager = make_tm(concurrency=4)
    order: list[str] = []

    reads = [0]  # blocking reads begun; the count when the last job started
    started_at = [0]

    async def job(task, ctx):
        order.append("start")
        started_at[0] = reads[0]

    tm.register_handler(event="job", handler=job)
    await tm.start()
    try:
        assert tm.processor is not None
        consumer = tm.processor.consumer
        fetch = consumer.fetcher.fetch

        async def noting_fetch():
            order.append("fetch")
            return await fetch()

        read = consumer.reader.read

        async def counting_read(*args):
            reads[0] += 1
            return await read(*args)

        consumer.fetcher.fetch = noting_fetch  # type: ignore[method-assign]
        consumer.reader.read = counting_read  # type: ignore[method-assign]
        firsts = []
        for _ in range(10):
            # back in the blocking read (polled: a fixed sleep was too short on a busy host)
            assert await await_until(lambda: reads[0] > started_at[0])
            order.clear()
            emitter = threading.Thread(target=tm.emit, args=("job",))  # off the worker's loop
            emitter.start()
            assert await await_until(lambda: "start" in order)
            emitter.join()
            firsts.append(order[0])
        # (a reclaim, due once per housekeeping tick, also goes first; it cannot be due each time)
        assert firsts == ["start"] * 10, firsts
    finally:
        await tm.stop()
