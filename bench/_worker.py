"""A worker process for the benchmarks: no-op tasks that each INCR a counter."""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import sys
import time

import redis.asyncio

from django_remq.core import TaskManager

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True)
parser.add_argument("--prefix", required=True)
parser.add_argument("--concurrency", type=int, default=1)
parser.add_argument("--burst", action="store_true")
parser.add_argument("--uvloop", action="store_true")
args = parser.parse_args()

_client: redis.asyncio.Redis | None = None


async def noop(task, ctx):  # type: ignore[no-untyped-def]
    global _client
    if _client is None:
        _client = redis.asyncio.Redis.from_url(args.url)
    await _client.incr(f"{args.prefix}:counter")


async def stamp(task, ctx):  # type: ignore[no-untyped-def]
    global _client
    if _client is None:
        _client = redis.asyncio.Redis.from_url(args.url)
    await _client.rpush(f"{args.prefix}:latency", time.time() - task.data["t"])


async def main() -> None:
    tm = TaskManager.init(db=args.url, prefix=args.prefix, concurrency=args.concurrency,
                          processor={"max_logs_per_task": 10})
    tm.register_handler(event="noop", handler=noop)
    tm.register_handler(event="stamp", handler=stamp)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await tm.start(burst=args.burst)
    print("READY", flush=True)
    assert tm.processor is not None
    idle = asyncio.ensure_future(tm.processor.consumer.idle.wait())
    halt = asyncio.ensure_future(stop.wait())
    await asyncio.wait([idle, halt], return_when=asyncio.FIRST_COMPLETED)
    await tm.stop()
    print(f"RSS {peak_rss_kb()}", flush=True)


def peak_rss_kb() -> int:
    """This process's peak RSS. Not getrusage's ru_maxrss: that keeps the high-water mark
    of the parent it was forked from (the benchmark, after building 50,000 emits)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if args.uvloop:
    import uvloop

    uvloop.run(main())
else:
    asyncio.run(main())
sys.exit(0)
