"""A worker process for the engine's crash and shutdown tests.

    python -m tests.engine_worker URL PREFIX [--concurrency N] [--claim-idle-ms MS]
        [--max-deliveries N] [--shutdown-timeout-ms MS] [--wait-replicas N] [--queues A,B]

Handlers: ``sleep`` (sleeps data["s"] seconds, data["again"] on a later run of the job
if given, records start/finish in Redis lists),
``nap`` (sleeps data["s"] seconds, nothing else), ``die`` (kills its own process, as an
OOM kill or segfault would).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
from typing import Any

import redis.asyncio

from django_remq.core import TaskManager
from tests.cluster import is_cluster


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("prefix")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--claim-idle-ms", type=int, default=1000)
    p.add_argument("--max-deliveries", type=int, default=5)
    p.add_argument("--shutdown-timeout-ms", type=int, default=10_000)
    p.add_argument("--wait-replicas", type=int, default=0)
    p.add_argument("--queues", default="default", help="comma-separated; each gets every handler")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO)
    cluster = is_cluster(args.url)
    client = (redis.asyncio.RedisCluster.from_url(args.url, decode_responses=True) if cluster
              else redis.asyncio.Redis.from_url(args.url, decode_responses=True))

    async def sleep(task: Any, ctx: Any) -> str:
        await client.rpush(f"{args.prefix}:started", task.id)
        seconds = task.data["s"]
        if "again" in task.data and not await client.set(f"{args.prefix}:ran:{task.id}", 1,
                                                         nx=True):
            seconds = task.data["again"]  # a run after the first (a reclaimed job)
        await asyncio.sleep(seconds)
        await client.rpush(f"{args.prefix}:finished", task.id)
        return "slept"

    async def nap(task: Any, ctx: Any) -> None:
        await asyncio.sleep(task.data["s"])

    def die(task: Any, ctx: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)

    tm = TaskManager.init(db=args.url, prefix=args.prefix, concurrency=args.concurrency,
                          processor={"claim_idle_ms": args.claim_idle_ms,
                                     "max_deliveries": args.max_deliveries,
                                     "shutdown_timeout_ms": args.shutdown_timeout_ms},
                          cluster=cluster, wait_replicas=args.wait_replicas)
    for queue in args.queues.split(","):
        tm.register_handler(event="sleep", handler=sleep, queue=queue)
        tm.register_handler(event="nap", handler=nap, queue=queue)
        tm.register_handler(event="die", handler=die, queue=queue)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        print("READY", flush=True)
        await tm.run(stop_event=stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
