"""Sdk at scale: 1,000,000 finished jobs in one queue.

    python bench/sdk.py [--url redis://127.0.0.1:6379/12] [--jobs 1000000] [--runs 50]

Seeds the jobs with pipelines writing exactly what the engine writes for a completed
job (a record copied from one real job run by a TaskManager, its TTL as finish.lua
sets it, its ``status:completed`` index entry), times the Sdk's reads (median of
``--runs`` calls, ms), reports Redis memory per finished job, and deletes its keys.
Use a database nobody else uses: it reads ``INFO memory`` of the whole server.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk
from django_remq.core.store.keys import Keys

QUEUE = "bench"
CHUNK = 10_000
TTL_MS = 86_400_000


def template(url: str, prefix: str) -> dict[str, str]:
    """The record of one job really run by the engine (completed)."""
    tm = TaskManager.init(db=url, prefix=prefix)
    tm.register_handler(event="send-report", handler=lambda task, ctx: {"sent": True},
                        queue=QUEUE)
    job_id = tm.emit("send-report", queue=QUEUE, data={"user_id": 12345, "report": "weekly"})
    asyncio.run(tm.run(burst=True))
    tm.conn.close()
    client = redis.Redis.from_url(url, decode_responses=True)
    fields = client.hgetall(Keys(prefix).queue(QUEUE).job(job_id))
    client.close()
    assert fields.get("status") == "completed", fields
    Sdk(url, prefix=prefix).delete_job(job_id, QUEUE)
    return fields


def seed(r: redis.Redis, prefix: str, n: int, shape: dict[str, Any]) -> list[str]:
    qk = Keys(prefix).queue(QUEUE)
    start = int(time.time() * 1000) - n
    ids = [uuid.uuid4().hex for _ in range(n)]
    for lo in range(0, n, CHUNK):
        pipe = r.pipeline(transaction=False)
        scores = {}
        for i in range(lo, min(lo + CHUNK, n)):
            at = start + i
            job_id = ids[i]
            record = {**shape, "id": job_id, "timestamp": at - 5, "last_run": at - 3,
                      "finished_at": at}
            pipe.hset(qk.job(job_id), mapping=record)
            pipe.pexpire(qk.job(job_id), TTL_MS)
            scores[job_id] = at
        pipe.zadd(qk.status("completed"), scores)
        pipe.execute()
    return ids


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm: script load, connection
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def amedian_ms(fn: Callable[[], Any], runs: int) -> float:
    await fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def cleanup(r: redis.Redis, prefix: str, ids: list[str]) -> None:
    qk = Keys(prefix).queue(QUEUE)
    for lo in range(0, len(ids), CHUNK):
        r.unlink(*(qk.job(i) for i in ids[lo:lo + CHUNK]))
    leftover = list(r.scan_iter(f"{prefix}:*", count=1000))
    if leftover:
        r.unlink(*leftover)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="redis://127.0.0.1:6379/12")
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=50)
    opts = ap.parse_args()
    prefix = f"bench-sdk-{uuid.uuid4().hex[:6]}"
    r = redis.Redis.from_url(opts.url, decode_responses=True)
    shape = template(opts.url, prefix)
    before = int(r.info("memory")["used_memory"])
    t0 = time.perf_counter()
    ids = seed(r, prefix, opts.jobs, shape)
    seeded_s = time.perf_counter() - t0
    after = int(r.info("memory")["used_memory"])
    sdk = Sdk(opts.url, prefix=prefix)
    mid = opts.jobs // 2
    some = ids[mid]
    try:
        print(f"seeded {opts.jobs:,} completed jobs in {seeded_s:.1f} s "
              f"({opts.jobs / seeded_s:,.0f}/s); record fields: {len(shape)}")
        print(f"memory per finished job: {(after - before) / opts.jobs:,.0f} bytes "
              "(record + TTL + index entry; INFO used_memory delta / jobs)")
        cases: list[tuple[str, Callable[[], Any]]] = [
            ("get_queue_stats", lambda: sdk.get_queue_stats(QUEUE)),
            ("get_job", lambda: sdk.get_job(some, QUEUE)),
            ("list_jobs status=completed, first page (100)",
             lambda: sdk.list_jobs(QUEUE, "completed", limit=100)),
            (f"list_jobs status=completed, offset {mid:,} (100)",
             lambda: sdk.list_jobs(QUEUE, "completed", limit=100, offset=mid)),
            ("list_jobs all statuses, first page (100)",
             lambda: sdk.list_jobs(QUEUE, limit=100)),
            (f"list_jobs all statuses, offset {mid:,} (100; bisection in Lua)",
             lambda: sdk.list_jobs(QUEUE, limit=100, offset=mid)),
            (f"list_jobs all queues, offset {mid:,} (100; bisection across queues)",
             lambda: sdk.list_jobs(None, limit=100, offset=mid)),
            ("list_jobs search='zzz' (newest 10,000 scanned)",
             lambda: sdk.list_jobs(QUEUE, search="zzz")),
        ]
        check = sdk.list_jobs(QUEUE, "completed", limit=1, offset=mid)
        if not check or check[0].id != ids[opts.jobs - 1 - mid]:
            raise SystemExit("the page at the offset is wrong")
        print(f"{'operation':<66} median ms ({opts.runs} runs)")
        for name, fn in cases:
            print(f"{name:<66} {median_ms(fn, opts.runs):8.2f}")
        aget = asyncio.run(amedian_ms(lambda: sdk.aget_job(some, QUEUE), opts.runs))
        print(f"{'aget_job (async twin)':<66} {aget:8.2f}")
    finally:
        cleanup(r, prefix, ids)
        print(f"cleaned up; keys left with prefix {prefix}: "
              f"{sum(1 for _ in r.scan_iter(f'{prefix}:*', count=1000))}")


if __name__ == "__main__":
    main()
