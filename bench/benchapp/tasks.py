"""Autodiscovered by the bench workers: no-ops (bench/tasks.py), INCRs (bench/processes.py)."""

from __future__ import annotations

import os
from typing import Any

import redis
import redis.asyncio

from django_remq import handler
from django_remq.backends.compat import task


@task(queue_name="bench")
async def noop_task(i: int) -> int:
    return i


@handler("bench.noop", queue="bench")
async def noop_handler(job: Any, ctx: Any) -> Any:
    return job.data["args"][0]


_clients: dict[str, Any] = {}


def _counter() -> str:
    return f"{os.environ['BENCH_PREFIX']}:counter"


@handler("bench.incr", queue="bench")
async def incr(job: Any, ctx: Any) -> None:
    """bench/processes.py's async job: INCR a counter (the issue's same job everywhere)."""
    if "aio" not in _clients:
        _clients["aio"] = redis.asyncio.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    await _clients["aio"].incr(_counter())


@handler("bench.incr_sync", queue="bench")
def incr_sync(job: Any, ctx: Any) -> None:
    """The same as a plain ``def`` (what a Django user writes), with a sync client."""
    if "sync" not in _clients:
        _clients["sync"] = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    _clients["sync"].incr(_counter())
