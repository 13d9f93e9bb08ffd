"""What the WebSocket gateway costs a worker's drain rate; prints figures.

    python bench/gateway.py [--url redis://127.0.0.1:6379/14] [--n 5000] [--rounds 3]

Drains N pre-queued tasks (each sends one ``ctx.socket.update`` and finishes) in this
process, concurrency 64, burst mode, three ways, alternated over rounds (the host is
shared and noisy; the best round of each is printed):

- today: no event sink (``expose=None``);
- installed, nobody listening: the channel-layer sink (channels-redis) in place,
  no connection open, so every event is dropped at once;
- one broadcast listener: a separate process registered as a broadcast connection
  and reading the group, so every update and task_finished is sent.

Not a test: figures vary with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
import uuid
from typing import Any

import django
import redis
from _redis_server import delete_keys
from django.conf import settings

if not settings.configured:
    settings.configure(INSTALLED_APPS=[])
    django.setup()

from channels_redis.core import RedisChannelLayer

from django_remq.consumers.delivery import ChannelLayerSink, broadcast_group
from django_remq.core import TaskManager

CONCURRENCY = 64


async def report(task: Any, ctx: Any) -> None:
    ctx.socket.update({"step": 1}, 50)


async def drain(url: str, prefix: str, n: int, sink: str | None) -> tuple[float, float]:
    """(tasks per second of wall time, CPU microseconds of this process per task)."""
    tm = TaskManager.init(db=url, prefix=prefix, concurrency=CONCURRENCY,
                          processor={"max_logs_per_task": 10})
    if sink is not None:
        tm.expose = ChannelLayerSink(RedisChannelLayer(hosts=[url], prefix=sink), tm.conn,
                                     tm.keys)
    tm.register_handler(event="report", handler=report)
    tm.emit_many({"event": "report", "data": {"i": i}} for i in range(n))
    t0, c0 = time.perf_counter(), time.process_time()
    await tm.run(burst=True)
    rate = n / (time.perf_counter() - t0)
    cpu_us = (time.process_time() - c0) / n * 1e6
    if isinstance(tm.expose, ChannelLayerSink):
        print(f"      sink: sent {tm.expose.sent}, coalesced {tm.expose.coalesced}, "
              f"dropped {tm.expose.dropped}")
        await tm.expose.aclose()
    await tm.conn.aclose()
    return rate, cpu_us


def dropped_event_cost(url: str, calls: int = 1_000_000) -> float:
    """Nanoseconds the sink takes to drop one event when nobody listens."""
    tm = TaskManager.init(db=url, prefix="benchgw-idle")
    sink = ChannelLayerSink(None, tm)
    sink.loaded = True  # as after its first registry read: nobody listening
    event = {"type": "task_update", "taskId": "x", "id": "x", "event": "report",
             "queue": "default", "data": {"step": 1}, "progress": 50, "extra": {}}
    t0 = time.perf_counter()
    for _ in range(calls):
        sink(event)
    return (time.perf_counter() - t0) / calls * 1e9


def listen(url: str, prefix: str, layer_prefix: str, ready: Any, stop: Any) -> None:
    """A broadcast connection, as the gateway keeps one: registered, reading its channel."""
    async def main() -> None:
        layer = RedisChannelLayer(hosts=[url], prefix=layer_prefix, capacity=100_000)
        channel = await layer.new_channel()
        await layer.group_add(broadcast_group(prefix), channel)
        client = redis.Redis.from_url(url)
        client.zadd(f"{prefix}:gateway:broadcast", {channel: time.time() * 1000 + 3_600_000})
        ready.set()
        received = 0
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(layer.receive(channel), 0.5)
                received += len(message["events"])
            except TimeoutError:
                pass
        print(f"      listener received {received} events")

    asyncio.run(main())


def cleanup(url: str, *patterns: str) -> None:
    client = redis.Redis.from_url(url)
    for pattern in patterns:
        delete_keys(client, pattern)
    client.close()


MODES = ("today", "installed, nobody listening", "one broadcast listener")


def one_round(url: str, n: int, r: int) -> dict[str, tuple[float, float]]:
    rates = {}
    for mode in MODES[r % 3:] + MODES[:r % 3]:  # each mode goes first in some round
        prefix = f"benchgw{uuid.uuid4().hex[:6]}"
        layer_prefix = f"{prefix}-asgi"
        listener = None
        stop = multiprocessing.Event()
        if mode == "one broadcast listener":
            ready = multiprocessing.Event()
            listener = multiprocessing.Process(target=listen,
                                               args=(url, prefix, layer_prefix, ready, stop))
            listener.start()
            ready.wait(30)
        sink = None if mode == "today" else layer_prefix
        rates[mode] = asyncio.run(drain(url, prefix, n, sink))
        print(f"    {mode:<30} {rates[mode][0]:>8,.0f} tasks/s  {rates[mode][1]:6.0f} us CPU/task")
        if listener is not None:
            time.sleep(1)
            stop.set()
            listener.join(30)
        cleanup(url, f"{prefix}:*", f"{layer_prefix}*")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("REMQ_BENCH_REDIS_URL",
                                                        "redis://127.0.0.1:6379/14"))
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"gateway cost, {args.n} tasks per drain, concurrency {CONCURRENCY}, {args.url}")
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for r in range(args.rounds):
        print(f"  round {r + 1}")
        for mode, (rate, cpu_us) in one_round(args.url, args.n, r).items():
            best[mode] = max(best.get(mode, 0.0), rate)
            cpu[mode] = min(cpu.get(mode, float("inf")), cpu_us)
    print("best of rounds (wall-clock rate; CPU time of the worker per task):")
    for mode in MODES:
        rate, us = best[mode], cpu[mode]
        print(f"  {mode:<30} {rate:>8,.0f} tasks/s ({100 * rate / best['today']:5.1f} %)"
              f"  {us:6.0f} us CPU/task ({100 * us / cpu['today']:5.1f} %)")
    ns = dropped_event_cost(args.url)
    print(f"dropping one event with nobody listening: {ns:.0f} ns "
          f"({2 * ns / 1000 / cpu['today'] * 100:.2f} % of a task's CPU at 2 events per task)")


if __name__ == "__main__":
    main()
