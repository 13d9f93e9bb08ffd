"""Delays, pausing, dedup, bounded logs and retention, on a real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest

from django_remq.core import TaskManager
from django_remq.core.store.keys import Keys

from .cluster import on_both
from .records import record

pytestmark = pytest.mark.redis


async def run_for(tm: TaskManager, seconds: float) -> None:
    stop = asyncio.Event()
    runner = asyncio.create_task(tm.run(stop_event=stop))
    await asyncio.sleep(seconds)
    stop.set()
    await runner


@on_both()
async def test_delayed_job_runs_no_earlier_than_its_time(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    started: list[float] = []

    async def later(task, ctx):
        started.append(time.time())

    tm.register_handler(event="later", handler=later)
    emitted = time.time()
    job_id = tm.emit("later", options={"delay_ms": 600})
    job = record(r, prefix, job_id)
    assert job.status == "delayed"
    assert abs(job.delay_until / 1000 - (emitted + 0.6)) < 0.1
    await run_for(tm, 1.2)
    assert len(started) == 1
    assert started[0] >= emitted + 0.6 - 0.01  # Redis clock vs ours: same host
    assert started[0] - (emitted + 0.6) < 0.35  # promoted promptly (~100 ms tick)
    assert record(r, prefix, job_id).status == "completed"


async def test_delay_until_datetime(make_tm, r, prefix):
    from datetime import UTC, datetime, timedelta

    tm: TaskManager = make_tm()
    job_id = tm.emit("x", options={"delay_until": datetime.now(UTC) + timedelta(hours=1)})
    assert record(r, prefix, job_id).status == "delayed"
    assert r.zscore(Keys(prefix).queue("default").delayed, job_id) > time.time() * 1000 + 3500e3


@on_both()
async def test_paused_queue_holds_work_and_resume_releases_it(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    ran: list[str] = []

    async def job(task, ctx):
        ran.append(task.id)

    tm.register_handler(event="job", handler=job)
    tm.pause_queue("default")
    assert tm.is_queue_paused("default")
    job_id = tm.emit("job")
    stop = asyncio.Event()
    runner = asyncio.create_task(tm.run(stop_event=stop))
    await asyncio.sleep(0.5)
    assert ran == []
    assert record(r, prefix, job_id).status == "waiting"
    # not read at all: no consumer holds the entry
    assert r.xpending(Keys(prefix).queue("default").stream, "remq")["pending"] == 0
    await tm.aresume_queue("default")
    assert not await tm.ais_queue_paused("default")
    for _ in range(50):
        if ran:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await runner
    assert ran == [job_id]


async def test_pausing_one_queue_leaves_the_others_running(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    ran: list[str] = []

    async def job(task, ctx):
        ran.append(task.queue)

    tm.register_handler(event="job", handler=job, queue="a")
    tm.register_handler(event="job", handler=job, queue="b")
    await tm.apause_queue("a")
    tm.emit("job", queue="a")
    tm.emit("job", queue="b")
    await run_for(tm, 0.5)
    assert ran == ["b"]


async def test_explicit_id_is_not_enqueued_twice_while_live(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    runs: list[object] = []

    async def once(task, ctx):
        runs.append(task.data)

    tm.register_handler(event="once", handler=once)
    assert tm.emit("once", data=1, options={"id": "order-42"}) == "order-42"
    assert tm.emit("once", data=2, options={"id": "order-42"}) == "order-42"
    qk = Keys(prefix).queue("default")
    assert r.xlen(qk.stream) == 1
    await tm.run(burst=True)
    assert runs == [1]
    # finished: the same id may run again, as a new job
    tm.emit("once", data=3, options={"id": "order-42"})
    await tm.run(burst=True)
    assert runs == [1, 3]
    assert record(r, prefix, "order-42").state.data == 3


async def test_logs_are_capped_oldest_first(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={"max_logs_per_task": 3})

    def chatty(task, ctx):
        for i in range(10):
            task.logger(f"line {i}")

    tm.register_handler(event="chatty", handler=chatty)
    job_id = tm.emit("chatty")
    await tm.run(burst=True)
    assert [log.message for log in record(r, prefix, job_id).logs] == [
        "line 7", "line 8", "line 9"]


async def test_logs_are_visible_while_the_task_runs(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    seen: list[list[str]] = []

    async def long(task, ctx):
        task.logger("step 1")
        await asyncio.sleep(0.2)
        seen.append([log.message for log in record(r, prefix, task.id).logs])

    tm.register_handler(event="long", handler=long)
    tm.emit("long")
    await tm.run(burst=True)
    assert seen == [["step 1"]]


@on_both()
async def test_retention_caps_completed_jobs_by_count(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={"retention": {"completed_max_count": 5}})

    async def noop(task, ctx):
        task.logger("x")

    tm.register_handler(event="noop", handler=noop)
    ids = tm.emit_many({"event": "noop"} for _ in range(8))
    await tm.run(burst=True)
    qk = Keys(prefix).queue("default")
    assert r.zcard(qk.status("completed")) == 5
    kept = [i for i in ids if r.exists(qk.job(i))]
    assert len(kept) == 5
    assert not any(r.exists(qk.logs(i)) for i in ids if i not in kept)


async def test_retention_expires_completed_jobs_by_age(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={"retention": {"completed_max_age_ms": 300}})

    async def noop(task, ctx):
        task.logger("x")

    tm.register_handler(event="noop", handler=noop)
    old = tm.emit("noop")
    await tm.run(burst=True)
    qk = Keys(prefix).queue("default")
    assert 0 < r.pttl(qk.job(old)) <= 300
    assert 0 < r.pttl(qk.logs(old)) <= 300
    await asyncio.sleep(0.4)
    assert not r.exists(qk.job(old))
    new = tm.emit("noop")
    await tm.run(burst=True)  # the next finish trims the index
    assert r.zrange(qk.status("completed"), 0, -1) == [new]


async def test_retention_none_keeps_jobs(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={"retention": {"completed_max_age_ms": None,
                                                       "completed_max_count": None}})
    tm.register_handler(event="noop", handler=lambda task, ctx: None)
    job_id = tm.emit("noop")
    await tm.run(burst=True)
    assert r.pttl(Keys(prefix).queue("default").job(job_id)) == -1


async def test_failed_jobs_keep_longer_than_completed(make_tm, r, prefix):
    tm: TaskManager = make_tm()

    def boom(task, ctx):
        raise RuntimeError("no")

    tm.register_handler(event="boom", handler=boom)
    job_id = tm.emit("boom")
    await tm.run(burst=True)
    ttl = r.pttl(Keys(prefix).queue("default").job(job_id))
    assert 6 * 86_400_000 < ttl <= 7 * 86_400_000
