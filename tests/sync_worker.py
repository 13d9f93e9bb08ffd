"""A worker process with plain ``def`` handlers, for the sync-handler process tests.

    python -m tests.sync_worker URL PREFIX [--concurrency N] [--timeout-ms MS]
        [--shutdown-timeout-ms MS] [--claim-idle-ms MS]

Handlers: ``stuck`` (blocks for an hour, with ``timeout_ms``), ``nap`` (sleeps
data["s"] seconds, records its start and finish in Redis lists), ``quick``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from typing import Any

import redis

from django_remq.core import TaskManager


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("prefix")
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--timeout-ms", type=int, default=500)
    p.add_argument("--shutdown-timeout-ms", type=int, default=10_000)
    p.add_argument("--claim-idle-ms", type=int, default=30_000)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO)
    client = redis.Redis.from_url(args.url, decode_responses=True)

    def stuck(task: Any, ctx: Any) -> None:
        time.sleep(3600)

    def nap(task: Any, ctx: Any) -> str:
        client.rpush(f"{args.prefix}:started", task.id)
        time.sleep(task.data["s"])
        client.rpush(f"{args.prefix}:finished", task.id)
        return "rested"

    def quick(task: Any, ctx: Any) -> Any:
        return task.data

    tm = TaskManager.init(db=args.url, prefix=args.prefix, concurrency=args.concurrency,
                          processor={"shutdown_timeout_ms": args.shutdown_timeout_ms,
                                     "claim_idle_ms": args.claim_idle_ms})
    tm.register_handler(event="stuck", handler=stuck, options={"timeout_ms": args.timeout_ms})
    tm.register_handler(event="nap", handler=nap)
    tm.register_handler(event="quick", handler=quick)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print("READY", flush=True)
        await tm.run(stop_event=stop)

    asyncio.run(run())
    print("EXITED", flush=True)


if __name__ == "__main__":
    main()
