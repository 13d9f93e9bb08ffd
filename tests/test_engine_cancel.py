"""Cooperative cancellation of running jobs (Sdk.cancel_job -> worker heartbeat)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk

from .records import record

pytestmark = pytest.mark.redis


async def test_cancel_a_running_async_job(make_tm, redis_url, r, prefix):
    tm: TaskManager = make_tm(processor={"claim_idle_ms": 300})  # heartbeat every 100 ms
    reached_end = []
    started = asyncio.Event()

    async def long(task, ctx):
        started.set()
        await asyncio.sleep(5)
        reached_end.append(task.id)

    tm.register_handler(event="long", handler=long)
    job_id = tm.emit("long")
    stop = asyncio.Event()
    runner = asyncio.create_task(tm.run(stop_event=stop))
    await asyncio.wait_for(started.wait(), 5)
    assert await Sdk(redis_url, prefix=prefix).acancel_job(job_id, "default") is True
    for _ in range(50):
        if r.hget(f"{prefix}:{{default}}:job:{job_id}", "status") == "cancelled":
            break
        await asyncio.sleep(0.05)
    stop.set()
    await runner
    job = record(r, prefix, job_id)
    assert job.status == "cancelled"
    assert job.errors[-1].type == "JobCancelled"
    assert reached_end == []


async def test_sync_handler_sees_ctx_cancelled(make_tm, redis_url, r, prefix):
    tm: TaskManager = make_tm(processor={"claim_idle_ms": 300})
    saw = threading.Event()
    started = threading.Event()

    def loop(task, ctx):
        started.set()
        for _ in range(100):
            if ctx.cancelled:
                saw.set()
                return "stopped early"
            threading.Event().wait(0.05)
        return "ran to the end"

    tm.register_handler(event="loop", handler=loop)
    job_id = tm.emit("loop")
    stop = asyncio.Event()
    runner = asyncio.create_task(tm.run(stop_event=stop))
    while not started.is_set():
        await asyncio.sleep(0.02)
    Sdk(redis_url, prefix=prefix).cancel_job(job_id, "default")
    for _ in range(60):
        if saw.is_set():
            break
        await asyncio.sleep(0.05)
    stop.set()
    await runner
    assert saw.is_set()
    assert record(r, prefix, job_id).status == "cancelled"
