"""What an Sdk call costs a Django view: ``Sdk()`` made on each request, against one kept.

    python bench/sdk_calls.py [--calls 2000] [--runs 3]

On a Redis server of its own, with ``REMQ`` pointing there: the median ms of
``Sdk().get_job(id, queue)`` (a new ``Sdk()`` per call, as a view is written), of the
same call on one Sdk kept, sync and asyncio, and the connections Redis accepted per call
(``INFO stats``' ``total_connections_received``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import django
import redis
from _redis_server import private_redis
from django.conf import settings


def timed(call: Callable[[], Any], calls: int) -> float:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def atimed(call: Callable[[], Awaitable[Any]], calls: int) -> float:
    async def run() -> float:
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            await call()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000
    return asyncio.run(run())


def accepted(client: redis.Redis) -> int:
    return int(client.info("stats")["total_connections_received"])  # type: ignore[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with private_redis() as url:
        settings.configure(INSTALLED_APPS=["django_remq"], USE_TZ=True,
                           REMQ={"REDIS_URL": url, "PREFIX": "sdkcalls"})
        django.setup()
        from django_remq import Sdk, emit
        from django_remq.api import get_task_manager

        get_task_manager().register_handler("noop", lambda task, ctx: None)
        job_id = emit("noop", data={})
        kept = Sdk()
        client = redis.Redis.from_url(url)
        for run in range(args.runs):
            before = accepted(client)
            fresh = timed(lambda: Sdk().get_job(job_id, "default"), args.calls)
            per_call = (accepted(client) - before) / args.calls
            one = timed(lambda: kept.get_job(job_id, "default"), args.calls)
            afresh = atimed(lambda: Sdk().aget_job(job_id, "default"), args.calls)
            aone = atimed(lambda: kept.aget_job(job_id, "default"), args.calls)
            print(f"run {run + 1}: get_job median ms: Sdk() per call {fresh:.3f} (Redis "
                  f"accepted {per_call:.2f} connections a call), one Sdk kept {one:.3f}; "
                  f"aget_job: Sdk() per call {afresh:.3f}, one kept {aone:.3f}")
        client.close()


if __name__ == "__main__":
    main()
