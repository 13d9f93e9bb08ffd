"""Test helper: write finished jobs straight into Redis in the shapes the engine writes
(record hash + status index), fast enough for tens of thousands of jobs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis

from django_remq.core.store.keys import Keys


def seed_finished(r: redis.Redis, prefix: str, queue: str, n: int, status: str = "completed",
                  start_ms: int = 1_700_000_000_000, name: str = "seeded") -> list[str]:
    qk = Keys(prefix).queue(queue)
    ids = [f"{status}-{i:07d}" for i in range(n)]
    pipe = r.pipeline(transaction=False)
    pipe.sadd(Keys(prefix).queues, queue)
    for i, job_id in enumerate(ids):
        at = start_ms + i
        fields = {"id": job_id, "name": name, "queue": queue, "data": json.dumps(i),
                  "timestamp": at, "status": status, "finished_at": at}
        if status == "failed":
            fields["errors"] = json.dumps([{"message": "boom", "type": "RuntimeError",
                                            "traceback": "", "attempt": 1, "timestamp": at}])
            fields["retried_attempts"] = 0
        pipe.hset(qk.job(job_id), mapping=fields)
        pipe.zadd(qk.status(status), {job_id: at})
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return ids


async def hold_a_running_job(tm: Any) -> tuple[str, asyncio.Event, asyncio.Task[None]]:
    """Emit one job and run a burst worker until that job is inside its handler, held
    there until the returned event is set; returns (job id, release, worker task)."""
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(task: Any, ctx: Any) -> None:
        started.set()
        await release.wait()

    tm.register_handler(event="slow", handler=slow)
    job_id = tm.emit("slow")
    runner = asyncio.create_task(tm.run(burst=True))
    await asyncio.wait_for(started.wait(), 20)
    return job_id, release, runner


def dead_letter(r: redis.Redis, prefix: str, fields: dict[str, Any],
                queue: str = "default") -> str:
    """Write a DLQ entry by hand into ``queue``'s stream (registering the queue, as an
    emit does); returns its Sdk entry id, ``"<queue>:<stream id>"``."""
    r.sadd(Keys(prefix).queues, queue)
    return f"{queue}:{r.xadd(Keys(prefix).queue(queue).dlq(), fields)}"
