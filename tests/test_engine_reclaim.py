"""A dead worker's tasks run again within about claim_idle_ms, whatever the load, and
nothing a worker holds without running stays stranded; real Redis, real processes."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from django_remq.core import TaskManager
from django_remq.core.store.keys import GROUP, Keys

from .records import record
from .workers import await_until, spawn_worker, stop_worker, wait_until

pytestmark = pytest.mark.processes


def test_dead_workers_tasks_are_reclaimed_while_the_others_are_busy(redis_url, r, prefix,
                                                                    make_tm):
    tm: TaskManager = make_tm()
    orphans = tm.emit_many({"event": "sleep", "data": {"s": 1.0}, "options": {"id": f"o{i}"}}
                           for i in range(2))
    dying = spawn_worker(redis_url, prefix, "--concurrency", "2", "--claim-idle-ms", "2000")
    assert wait_until(lambda: r.llen(f"{prefix}:started") == 2)
    dying.send_signal(signal.SIGKILL)
    dying.wait(10)
    killed_at = time.monotonic()
    # a backlog that keeps the survivor saturated for ~30 s
    tm.emit_many({"event": "sleep", "data": {"s": 0.15}} for _ in range(400))
    busy = spawn_worker(redis_url, prefix, "--concurrency", "2", "--claim-idle-ms", "2000")
    try:
        # claim_idle_ms (2 s) + an housekeeping tick (0.67 s) + a task's length, with room for
        # a slow shared machine; before the fix this waited for the whole backlog
        assert wait_until(lambda: set(orphans) <= set(r.lrange(f"{prefix}:finished", 0, -1)),
                          timeout=12)
        took = time.monotonic() - killed_at
        left = r.xlen(Keys(prefix).queue("default").stream)
    finally:
        stop_worker(busy)
    assert left > 50, f"the backlog was nearly drained ({left} left): no load to test under"
    assert took < 12
    assert all(record(r, prefix, o).status == "completed" for o in orphans)


async def test_an_entry_held_but_not_running_is_not_renewed_forever(make_tm, r, prefix):
    """An entry in this worker's pending list that no task of it runs (a delivery whose
    start was lost) is not kept alive by the heartbeat of the tasks it does run: it is
    reclaimed and run after claim_idle_ms."""
    tm: TaskManager = make_tm(concurrency=2, processor={"claim_idle_ms": 1000})
    ran: list[str] = []

    async def job(task, ctx):
        ran.append(task.id)

    async def long(task, ctx):
        await asyncio.sleep(6)
        ran.append("long-done")

    tm.register_handler(event="job", handler=job)
    tm.register_handler(event="long", handler=long)
    qk = Keys(prefix).queue("default")
    tm.pause_queue("default")
    job_id = tm.emit("job")
    stop = asyncio.Event()
    runner = asyncio.create_task(tm.run(stop_event=stop))
    try:
        await asyncio.sleep(0.3)
        assert tm.processor is not None
        me = tm.processor.consumer.name
        # this worker's consumer takes the entry, deliver marks the job as its own,
        # but no task ever starts (as when a start was lost)
        r.xreadgroup(GROUP, me, {qk.stream: ">"}, count=1)
        r.hset(qk.job(job_id), mapping={"status": "processing", "worker": me, "deliveries": 1})
        r.zrem(qk.status("waiting"), job_id)
        r.zadd(qk.status("processing"), {job_id: 1})
        tm.emit("long")  # runs meanwhile: the heartbeat renews what this worker runs
        await tm.aresume_queue("default")
        for _ in range(300):
            if "long-done" in ran:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await runner
    assert ran == [job_id, "long-done"]  # reclaimed after ~1 s, not after the long task
    assert record(r, prefix, job_id).status == "completed"


async def test_a_worker_recreates_a_consumer_group_that_vanished(make_tm, r, prefix, caplog):
    """A stream lost with its group (deleted, or a failover that lost it) while the worker
    was busy: the next steps (reclaim first) meet NOGROUP; the worker recreates the group
    and goes on, it does not loop on the error with new work left waiting."""
    tm: TaskManager = make_tm(concurrency=1, processor={"claim_idle_ms": 300})
    qk = Keys(prefix).queue("default")
    ran: list[int] = []

    async def nap(task, ctx):
        if task.data == 1:
            r.delete(qk.stream)  # its group goes with it; the next emit makes a bare stream
            await asyncio.sleep(1.0)  # housekeeping ticks pass: a reclaim is due when it ends
        ran.append(task.data)

    tm.register_handler(event="nap", handler=nap)
    tm.emit("nap", data=1)
    await tm.start()
    try:
        assert await await_until(lambda: ran == [1]), "the first job never ran"
        tm.emit("nap", data=2)
        assert await await_until(lambda: ran == [1, 2]), (
            "work emitted after the group vanished waits")
    finally:
        await tm.stop()
    assert "consumer group missing" in caplog.text
    assert r.xinfo_groups(qk.stream)[0]["name"] == GROUP
