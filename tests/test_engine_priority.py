"""Priority lanes on a real Redis: order, FIFO within a priority, aging, crashes, admin."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time

import pytest
import redis

from django_remq.core import InvalidOptions, TaskManager
from django_remq.core.sdk import Sdk
from django_remq.core.sdk import admin_calls as ac
from django_remq.core.settings import ProcessorSettings
from django_remq.core.store.keys import Keys
from django_remq.core.store.scripts import run_many

from .cluster import on_both
from .records import record
from .sdk_seed import dead_letter
from .workers import await_until, spawn_worker, stop_worker, wait_until

pytestmark = pytest.mark.processes

PRIORITIES = [-100, -7, 0, 0, 3, 50, 100]


def lane_sizes(r: redis.Redis, prefix: str, *priorities: int) -> list[int]:
    qk = Keys(prefix).queue("default")
    return [r.xlen(qk.lane(p)) for p in priorities]


@pytest.mark.parametrize("bad", [101, -101, 10**6, "5", 1.5, True])
def test_priority_is_validated_at_emit(make_tm, bad):
    tm: TaskManager = make_tm()
    with pytest.raises(InvalidOptions, match=r"'priority' must be an int"):
        tm.emit("x", options={"priority": bad})
    with pytest.raises(InvalidOptions, match=r"priority"):
        tm.register_handler(event="x", handler=lambda task, ctx: None,
                            options={"priority": bad})


@pytest.mark.parametrize("bad", [0, -5, "30s", True])
def test_priority_aging_ms_is_validated(bad):
    with pytest.raises(InvalidOptions, match="'priority_aging_ms' must be an int >= 1"):
        ProcessorSettings.from_options({"priority_aging_ms": bad})
    assert ProcessorSettings.from_options({"priority_aging_ms": 5}).priority_aging_ms == 5


@on_both()
async def test_a_backlog_runs_in_priority_order_fifo_within_a_priority(make_tm, r, prefix):
    tm: TaskManager = make_tm(concurrency=1)
    ran: list[int] = []
    tm.register_handler(event="job", handler=lambda task, ctx: ran.append(task.data["n"]))
    rng = random.Random(12)
    priorities = [rng.choice(PRIORITIES) for _ in range(100)]
    for n, p in enumerate(priorities[:50]):  # one at a time, and in one batch
        tm.emit("job", data={"n": n}, options={"priority": p} if p else None)
    tm.emit_many({"event": "job", "data": {"n": n}, "options": {"priority": p}}
                 for n, p in enumerate(priorities) if n >= 50)
    await tm.run(burst=True)
    expected = sorted(range(100), key=lambda n: (-priorities[n], n))
    assert ran == expected
    qk = Keys(prefix).queue("default")
    assert sorted(int(p) for p in r.zrange(qk.lanes, 0, -1)) == [-100, -7, 3, 50, 100]
    assert lane_sizes(r, prefix, *PRIORITIES) == [0] * len(PRIORITIES)  # all acknowledged


@on_both()
async def test_an_idle_worker_wakes_for_lanes_and_runs_what_it_read_beyond_its_slots(
        make_tm, r, prefix):
    """The blocking read covers every lane; with one slot, what it took from the other
    lanes is held and delivered next, never lost nor run twice."""
    tm: TaskManager = make_tm(concurrency=1)
    ran: list[int] = []
    tm.register_handler(event="job", handler=lambda task, ctx: ran.append(task.data["n"]))
    for p in (9, -9):  # the lanes exist before the worker starts
        tm.emit("job", data={"n": p}, options={"priority": p})
    await tm.start()
    assert await await_until(lambda: len(ran) == 2)
    await asyncio.sleep(0.3)  # idle: blocked in XREADGROUP over the three lanes
    tm.emit_many({"event": "job", "data": {"n": n}, "options": {"priority": p}}
                 for n, p in ((100, -9), (101, 0), (102, 9)))
    assert await await_until(lambda: len(ran) == 5)
    await asyncio.sleep(0.3)
    await tm.stop()
    assert ran[:2] == [9, -9]
    assert sorted(ran[2:]) == [100, 101, 102]
    assert lane_sizes(r, prefix, 9, 0, -9) == [0, 0, 0]


async def test_a_running_worker_learns_a_new_lane(make_tm, r, prefix):
    """Lanes made after the worker started (an emit, a delayed job) are read too."""
    tm: TaskManager = make_tm(concurrency=2)
    ran: list[str] = []
    tm.register_handler(event="job", handler=lambda task, ctx: ran.append(task.data))
    await tm.start()
    await asyncio.sleep(0.2)
    await tm.aemit("job", data="new lane", options={"priority": 3})
    await tm.aemit("job", data="delayed, new lane", options={"priority": -4, "delay_ms": 100})
    assert await await_until(lambda: len(ran) == 2)
    await tm.stop()
    assert sorted(ran) == ["delayed, new lane", "new lane"]
    assert lane_sizes(r, prefix, 3, -4) == [0, 0]


@pytest.mark.parametrize("aging_ms", [300, None])
async def test_a_low_priority_job_is_not_starved(make_tm, aging_ms):
    """Higher lanes never run dry, yet the low job runs once it waited priority_aging_ms
    (the default, 30 s, is far off here: it runs last)."""
    processor = {"priority_aging_ms": aging_ms} if aging_ms else {}
    tm: TaskManager = make_tm(concurrency=1, processor=processor)
    ran: list[str] = []

    async def job(task, ctx):
        ran.append(task.data)
        await asyncio.sleep(0.02)

    tm.register_handler(event="job", handler=job)
    tm.emit("job", data="low", options={"priority": -10})
    tm.emit_many({"event": "job", "data": f"high{n}", "options": {"priority": 10}}
                 for n in range(60))
    await tm.run(burst=True)
    assert len(ran) == 61
    if aging_ms:
        assert 0 < ran.index("low") < 50, ran.index("low")
    else:
        assert ran[-1] == "low"


async def test_a_retried_lane_job_keeps_its_priority(make_tm, r, prefix):
    tm: TaskManager = make_tm(concurrency=1)
    ran: list[str] = []

    async def job(task, ctx):
        ran.append(task.data)
        if task.data.startswith("flaky") and task.attempt == 1:
            raise RuntimeError("first attempt fails")
        await asyncio.sleep(0.05)

    tm.register_handler(event="job", handler=job)
    now = tm.emit("job", data="flaky-now", options={"priority": 5, "attempts": 1})
    later = tm.emit("job", data="flaky-later", options={"priority": 5, "attempts": 1,
                                                        "retry_delay_ms": 200})
    tm.emit_many({"event": "job", "data": f"plain{n}"} for n in range(15))
    await tm.run(burst=True)
    assert ran[:2] == ["flaky-now", "flaky-later"]
    # due at once: back on lane 5, ahead of the priority-0 jobs (once its failure is
    # acknowledged, which may let one of them start first)
    assert ran.index("flaky-now", 1) <= 3
    # due in 200 ms: promoted onto lane 5, so it goes before the priority-0 jobs left then
    assert ran.index("flaky-later", 2) < len(ran) - 5
    for job_id in (now, later):
        done = record(r, prefix, job_id)
        assert done.status == "completed"
        assert done.priority == 5
        assert done.retried_attempts == 1
    assert lane_sizes(r, prefix, 5, 0) == [0, 0]


def test_an_admin_script_not_given_the_jobs_lane_changes_nothing_and_names_it(
        make_tm, r, prefix):
    """The Sdk passes the lanes it has met, not the registry read first: a script must
    find the job's lane in KEYS before it changes anything, or say which one it needs."""
    tm: TaskManager = make_tm()
    qk = Keys(prefix).queue("default")
    job_id = tm.emit("job", options={"priority": 7})
    before = r.hgetall(qk.job(job_id))
    calls = [ac.retry(qk, job_id), ac.cancel(qk, job_id, -1), ac.pause(qk, job_id),
             ac.resume(qk, job_id), ac.delete(qk, job_id), ac.delete(qk, job_id, [3]),
             ac.restore(qk, "gone", {"name": "job", "priority": "-4"})]
    changes = run_many(r, calls)
    assert [(c.code, c.lane) for c in changes] == [("lane", 7)] * 6 + [("lane", -4)]
    assert r.hgetall(qk.job(job_id)) == before  # still waiting, on its lane
    assert lane_sizes(r, prefix, 7, 0) == [1, 0]
    assert not r.exists(qk.job("gone"))
    [paused] = run_many(r, [ac.pause(qk, job_id, [3, 7])])
    assert (paused.code, paused.before, lane_sizes(r, prefix, 7)) == ("ok", "waiting", [0])


@on_both()
def test_admin_pause_resume_cancel_delete_retry_move_a_lane_jobs_entry(
        make_tm, redis_url, r, prefix, on_cluster):
    tm: TaskManager = make_tm()
    sdk = Sdk(redis_url, prefix=prefix, cluster=on_cluster)
    qk = Keys(prefix).queue("default")
    paused, cancelled, deleted = (tm.emit("job", options={"priority": 7}) for _ in range(3))
    other = tm.emit("job", options={"priority": -3})

    def entry_of(job_id: str) -> list[str]:
        eid = r.hget(qk.job(job_id), "entry")
        return [e for e, _ in r.xrange(qk.lane(7), eid, eid)]

    assert lane_sizes(r, prefix, 7, 0) == [3, 0]
    sdk.pause_job(paused, "default")
    sdk.cancel_job(cancelled, "default")
    sdk.delete_job(deleted, "default")
    assert lane_sizes(r, prefix, 7, 0) == [0, 0]  # each took its entry off lane 7
    sdk.resume_job(paused, "default")
    assert lane_sizes(r, prefix, 7, 0) == [1, 0]
    assert entry_of(paused) == [r.hget(qk.job(paused), "entry")]
    sdk.retry_job(cancelled, "default")  # a cancelled job runs again, on its lane
    assert lane_sizes(r, prefix, 7, 0) == [2, 0]
    assert entry_of(cancelled) == [r.hget(qk.job(cancelled), "entry")]
    assert record(r, prefix, deleted) is None
    assert sdk.cancel_job(other, "default")  # a second lane, met by the same Sdk
    assert lane_sizes(r, prefix, -3, 7, 0) == [0, 2, 0]
    fresh = Sdk(redis_url, prefix=prefix, cluster=on_cluster)  # has met no lane yet
    assert fresh.retry_job(other, "default").status == "waiting"  # type: ignore[union-attr]
    assert lane_sizes(r, prefix, -3, 7, 0) == [1, 2, 0]


@on_both()
async def test_requeue_from_the_dlq_puts_the_job_on_the_lane_of_its_record_or_its_copy(
        make_tm, redis_url, r, prefix, on_cluster):
    """The copy's lane goes with the first call (an expired record is rebuilt from the
    copy, its lane registered for the workers); a live record on another lane (its id
    emitted again) makes the script ask first, changing nothing, and the job goes back
    on the record's lane."""
    tm: TaskManager = make_tm()
    ran: list[str] = []
    tm.register_handler(event="work", handler=lambda task, ctx: ran.append(task.id))

    def letter(job_id: str, priority: int) -> str:
        copy = {"id": job_id, "name": "work", "queue": "default", "data": "7",
                "status": "failed", "priority": str(priority)}
        return dead_letter(r, prefix, {"id": job_id, "queue": "default", "name": "work",
                                       "job": json.dumps(copy)})

    lost = letter("lost", 9)  # lane 9 was never in this queue's registry
    job = Sdk(redis_url, prefix=prefix, cluster=on_cluster).requeue_dlq(lost)
    assert (job.status, job.priority) == ("waiting", 9)  # type: ignore[union-attr]
    assert lane_sizes(r, prefix, 9, 4, 0) == [1, 0, 0]
    again = tm.emit("work", options={"priority": 4})
    assert Sdk(redis_url, prefix=prefix, cluster=on_cluster).cancel_job(again, "default")
    entry = letter(again, 9)
    job = Sdk(redis_url, prefix=prefix, cluster=on_cluster).requeue_dlq(entry)
    assert (job.status, job.priority) == ("waiting", 4)  # type: ignore[union-attr]
    assert lane_sizes(r, prefix, 9, 4, 0) == [1, 1, 0]
    qk = Keys(prefix).queue("default")
    assert r.xlen(qk.dlq()) == 0
    assert sorted(int(p) for p in r.zrange(qk.lanes, 0, -1)) == [4, 9]
    await tm.run(burst=True)
    assert ran == ["lost", again]  # the workers read both lanes, the higher first


def test_a_killed_workers_lane_job_is_reclaimed(redis_url, r, prefix, make_tm):
    tm: TaskManager = make_tm()
    job_id = tm.emit("sleep", data={"s": 1.0}, options={"priority": 42})
    first = spawn_worker(redis_url, prefix, "--concurrency", "2", "--claim-idle-ms", "1000")
    assert wait_until(lambda: r.llen(f"{prefix}:started") == 1)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    qk = Keys(prefix).queue("default")
    assert r.xlen(qk.lane(42)) == 1  # pending, held by the dead worker
    second = spawn_worker(redis_url, prefix, "--concurrency", "2", "--claim-idle-ms", "1000")
    try:
        assert wait_until(lambda: r.zcard(qk.status("completed")) == 1, timeout=20)
    finally:
        stop_worker(second)
    assert r.lrange(f"{prefix}:started", 0, -1) == [job_id, job_id]
    assert r.lrange(f"{prefix}:finished", 0, -1) == [job_id]
    assert record(r, prefix, job_id).status == "completed"
    assert r.xlen(qk.lane(42)) == 0


async def test_retry_all_failed_puts_lane_jobs_back_on_their_lanes(make_tm, redis_url, r,
                                                                   prefix):
    tm: TaskManager = make_tm()

    def boom(task, ctx):
        raise RuntimeError("no")

    tm.register_handler(event="boom", handler=boom)
    for p in (8, 8, -3, 0):
        tm.emit("boom", options={"priority": p})
    await tm.run(burst=True)
    assert lane_sizes(r, prefix, 8, -3, 0) == [0, 0, 0]
    assert Sdk(redis_url, prefix=prefix).retry_all_failed("default") == 4
    assert lane_sizes(r, prefix, 8, -3, 0) == [2, 1, 1]


@on_both()
async def test_lanes_of_several_queues_are_read_at_once_and_dead_letter_per_queue(
        make_tm, redis_url, r, prefix, on_cluster):
    """On a cluster each queue (and its lanes, under its hash tag) is its own slot: the
    per-slot blocking reads cover the lanes; a failed lane job's dead letter is written
    by finish.lua on its lane, into its queue's DLQ, and requeueing puts it back there."""
    tm: TaskManager = make_tm(concurrency=4, processor={"dlq": {}})
    queues = ["alpha", "beta", "gamma"]
    started: list[tuple[str, float]] = []

    async def work(task, ctx):
        started.append((task.queue, time.monotonic()))
        if task.data == "fail":
            raise RuntimeError("lane job fails")

    for queue in queues:
        tm.register_handler("work", work, queue=queue)
        tm.emit("work", data="ok", queue=queue, options={"priority": 5})
    failed = tm.emit("work", data="fail", queue="beta", options={"priority": -2})
    await tm.start(queues)
    assert tm.processor is not None
    try:
        assert await await_until(lambda: len(started) == 4)
        tm.processor.consumer.reader.block_ms = 6000
        await asyncio.sleep(1.5)  # idle: blocked on every queue's lanes, for 6 s
        for queue in queues:  # lane 5 of each queue, one at a time
            before = len(started)
            sent = time.monotonic()
            await tm.aemit("work", data="ok", queue=queue, options={"priority": 5})
            assert await await_until(lambda n=before + 1: len(started) == n)
            assert started[-1][0] == queue
            assert started[-1][1] - sent < 3.0  # half the block; typically milliseconds
            await asyncio.sleep(0.5)
    finally:
        await tm.stop()
    beta = Keys(prefix).queue("beta")
    assert record(r, prefix, failed, "beta").status == "failed"
    [(_, letter)] = r.xrange(beta.dlq())
    assert letter["id"] == failed
    assert [r.xlen(Keys(prefix).queue(q).dlq()) for q in ("alpha", "gamma")] == [0, 0]
    assert [r.xlen(beta.lane(p)) for p in (5, -2, 0)] == [0, 0, 0]
    sdk = Sdk(redis_url, prefix=prefix, cluster=on_cluster)
    [entry] = sdk.list_dlq()
    assert entry.entry_id.startswith("beta:")
    assert sdk.requeue_dlq(entry.entry_id) is not None
    assert [r.xlen(beta.lane(p)) for p in (5, -2, 0)] == [0, 1, 0]  # back on its lane
    assert r.xlen(beta.dlq()) == 0
