"""A worker process for the benchmarks: no-op tasks that each INCR a counter.

``--floor``: no engine at all, a bare redis-py asyncio loop of blocking XREADGROUPs on
``<prefix>:floor`` that records each entry's age (the pick-up latency floor)."""

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
parser.add_argument("--floor", action="store_true")
args = parser.parse_args()

_client: redis.asyncio.Redis | None = None


async def noop(task, ctx):  # type: ignore[no-untyped-def]
    global _client
    if _client is None:
        _client = redis.asyncio.Redis.from_url(args.url)
    await _client.incr(f"{args.prefix}:counter")


async def bare(task, ctx):  # type: ignore[no-untyped-def]
    """No I/O of its own (the engine's cost alone); counts in hundreds so the bench sees
    the drain's progress."""
    global _client
    if task.data["i"] % 100 == 99:
        if _client is None:
            _client = redis.asyncio.Redis.from_url(args.url)
        await _client.incrby(f"{args.prefix}:counter", 100)


async def stamp(task, ctx):  # type: ignore[no-untyped-def]
    global _client
    if _client is None:
        _client = redis.asyncio.Redis.from_url(args.url)
    await _client.rpush(f"{args.prefix}:latency", time.time() - task.data["t"])


async def hold(task, ctx):  # type: ignore[no-untyped-def]
    await asyncio.sleep(task.data["s"])  # a long job: the worker holds its entry meanwhile


async def floor() -> None:
    """What any asyncio worker on redis-py pays: block, wake, parse, note the age."""
    client = redis.asyncio.Redis.from_url(args.url, decode_responses=True)
    stream = f"{args.prefix}:floor"
    await client.xgroup_create(stream, "g", id="$", mkstream=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("READY", flush=True)
    while not stop.is_set():
        reply = await client.xreadgroup("g", "c", {stream: ">"}, count=1, block=200)
        now = time.time()
        for _, entries in reply or []:
            for _, fields in entries:
                await client.rpush(f"{args.prefix}:latency", now - float(fields["t"]))
    await client.aclose()


async def main() -> None:
    if args.floor:
        await floor()
        return
    tm = TaskManager.init(db=args.url, prefix=args.prefix, concurrency=args.concurrency,
                          processor={"max_logs_per_task": 10})
    tm.register_handler(event="noop", handler=noop)
    tm.register_handler(event="bare", handler=bare)
    tm.register_handler(event="stamp", handler=stamp)
    tm.register_handler(event="hold", handler=hold)
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
