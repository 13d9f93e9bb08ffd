"""The same two jobs on every system, for ``bench/peers.py``: ``incr`` INCRs
``<prefix>:counter`` and ``stamp`` RPUSHes its pick-up latency (now minus the ``t`` it
was emitted with) to ``<prefix>:latency``, with a sync redis-py client (what a Django
user's handler does; our ``async def`` variant with an asyncio one). The URL and the
prefix come from the environment, so the emitting process and each system's own worker
command (``huey_consumer _peers.huey``, ``dramatiq _peers``, ``python _peers.py``) build
the same app.

    python _peers.py sync|async CONCURRENCY     # our worker, until SIGTERM
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from huey import RedisHuey

URL = os.environ["PEERS_REDIS_URL"]
PREFIX = os.environ["PEERS_PREFIX"]
COUNTER = f"{PREFIX}:counter"
LATENCY = f"{PREFIX}:latency"
client = redis.Redis.from_url(URL)

huey = RedisHuey(f"{PREFIX}-huey", url=URL, results=False)


@huey.task()
def huey_incr(i: int) -> None:
    client.incr(COUNTER)


@huey.task()
def huey_stamp(t: float) -> None:
    client.rpush(LATENCY, time.time() - t)


dramatiq.set_broker(RedisBroker(url=URL, namespace=f"{PREFIX}-dramatiq"))


@dramatiq.actor(max_retries=0)
def dramatiq_incr(i: int) -> None:
    client.incr(COUNTER)


@dramatiq.actor(max_retries=0)
def dramatiq_stamp(t: float) -> None:
    client.rpush(LATENCY, time.time() - t)


def run_remq(kind: str, concurrency: int) -> None:
    """Our worker (the engine, no Django) with ``def`` or ``async def`` handlers."""
    import asyncio
    import signal

    import redis.asyncio

    from django_remq.core import TaskManager

    async def main() -> None:
        aclient = redis.asyncio.Redis.from_url(URL)

        def incr(task: Any, ctx: Any) -> None:
            client.incr(COUNTER)

        def stamp(task: Any, ctx: Any) -> None:
            client.rpush(LATENCY, time.time() - task.data["t"])

        async def aincr(task: Any, ctx: Any) -> None:
            await aclient.incr(COUNTER)

        async def astamp(task: Any, ctx: Any) -> None:
            await aclient.rpush(LATENCY, time.time() - task.data["t"])

        tm = TaskManager.init(db=URL, prefix=PREFIX, concurrency=concurrency)
        tm.register_handler(event="incr", handler=incr if kind == "sync" else aincr)
        tm.register_handler(event="stamp", handler=stamp if kind == "sync" else astamp)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await tm.run(stop_event=stop)
        await aclient.aclose()

    asyncio.run(main())


if __name__ == "__main__":
    run_remq(sys.argv[1], int(sys.argv[2]))
