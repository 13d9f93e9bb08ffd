"""The soak's handlers: async and plain ``def``, logging, progress, follow-up emits from
both kinds, retries, dead letters, timeouts, cancellation, delays and debounce.

Every handler counts its run in a Redis hash (job id -> runs) before anything else, so
the test can tell exactly what ran, and how often."""

from __future__ import annotations

import asyncio
import time
from functools import cache
from typing import Any

import redis
import redis.asyncio

import django_remq
from django_remq import handler
from django_remq.conf import get_settings

from .spec import OPTIONS, QUEUE, RUNS, SAW_CANCEL

_aio: tuple[asyncio.AbstractEventLoop, redis.asyncio.Redis] | None = None


def _key(name: str) -> str:
    return f"{get_settings().prefix}:{name}"


@cache
def _sync() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url)


def _async() -> redis.asyncio.Redis:
    """One client per event loop (the worker has one; a re-executed worker a new one)."""
    global _aio
    loop = asyncio.get_running_loop()
    if _aio is None or _aio[0] is not loop:
        _aio = (loop, redis.asyncio.Redis.from_url(get_settings().redis_url))
    return _aio[1]


def _ran(task: Any) -> None:
    _sync().hincrby(_key(RUNS), task.id, 1)


async def _aran(task: Any) -> None:
    await _async().hincrby(_key(RUNS), task.id, 1)


def soak(event: str) -> Any:
    return handler(event, queue=QUEUE, **OPTIONS[event])


# -- follow-up emits next to logs and progress -----------------------------------------

@soak("soak.report_async")
async def report_async(task: Any, ctx: Any) -> dict[str, int]:
    """The README's first handler: log, progress, then ctx.emit on the loop with no await
    after it (the shape that wedged a worker's loop on Python 3.12+)."""
    await _aran(task)
    task.logger("report started")
    ctx.socket.update({"step": "fetching"}, 33)
    ctx.emit("soak.child_async", data={"parent": task.id}, options={"id": f"{task.id}.a"})
    ctx.emit("soak.child_sync", data={"parent": task.id}, options={"id": f"{task.id}.s"})
    return {"rows": 42}


@soak("soak.chain_async")
async def chain_async(task: Any, ctx: Any) -> str:
    """aemit awaited first, then the loop's ctx.emit beside a log line and progress."""
    await _aran(task)
    await ctx.aemit("soak.child_sync", data={"parent": task.id}, options={"id": f"{task.id}.s"})
    task.logger({"chained": task.id})
    ctx.emit("soak.child_async", data={"parent": task.id}, options={"id": f"{task.id}.a"})
    ctx.socket.update({"step": "done"}, 100)
    return "chained"


@soak("soak.report_sync")
def report_sync(task: Any, ctx: Any) -> dict[str, int]:
    """The same from a worker thread, where ctx.emit blocks until written."""
    _ran(task)
    task.logger("report started")
    ctx.socket.update({"step": "fetching"}, 50)
    ctx.emit("soak.child_async", data={"parent": task.id}, options={"id": f"{task.id}.a"})
    ctx.emit("soak.child_sync", data={"parent": task.id}, options={"id": f"{task.id}.s"})
    task.logger("report done")
    return {"rows": 7}


@soak("soak.child_async")
async def child_async(task: Any, ctx: Any) -> str:
    await _aran(task)
    task.logger(f"child of {task.data['parent']}")
    return task.data["parent"]


@soak("soak.child_sync")
def child_sync(task: Any, ctx: Any) -> str:
    _ran(task)
    ctx.socket.update({"parent": task.data["parent"]}, 100)
    return task.data["parent"]


@soak("soak.plain_async")
async def plain_async(task: Any, ctx: Any) -> Any:
    await _aran(task)
    return task.data


@soak("soak.plain_sync")
def plain_sync(task: Any, ctx: Any) -> Any:
    _ran(task)
    return task.data


# -- failures: retried, exhausted, timed out ---------------------------------------------

@soak("soak.flaky_async")
async def flaky_async(task: Any, ctx: Any) -> int:
    """Fails until its last allowed attempt."""
    await _aran(task)
    task.logger(f"attempt {task.attempt}")
    if task.attempt <= OPTIONS["soak.flaky_async"]["attempts"]:
        raise RuntimeError(f"flaky attempt {task.attempt}")
    return task.attempt


@soak("soak.flaky_sync")
def flaky_sync(task: Any, ctx: Any) -> int:
    _ran(task)
    ctx.socket.update({"attempt": task.attempt})
    if task.attempt <= OPTIONS["soak.flaky_sync"]["attempts"]:
        raise RuntimeError(f"flaky attempt {task.attempt}")
    return task.attempt


@soak("soak.doomed_async")
async def doomed_async(task: Any, ctx: Any) -> None:
    await _aran(task)
    task.logger("about to fail")
    raise ValueError("doomed")


@soak("soak.doomed_sync")
def doomed_sync(task: Any, ctx: Any) -> None:
    _ran(task)
    raise ValueError("doomed")


@soak("soak.slow_async")
async def slow_async(task: Any, ctx: Any) -> None:
    """Past its timeout_ms on every attempt: cancelled by the worker."""
    await _aran(task)
    await asyncio.sleep(30)


@soak("soak.slow_sync")
def slow_sync(task: Any, ctx: Any) -> None:
    """Past its timeout_ms: abandoned by the worker, its thread returns a little later."""
    _ran(task)
    time.sleep(0.5)


# -- cancelled while running, or before ------------------------------------------------

@soak("soak.long_async")
async def long_async(task: Any, ctx: Any) -> None:
    """Runs until cancelled (the test cancels it once it has started)."""
    await _aran(task)
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await _async().hset(_key(SAW_CANCEL), task.id, 1)
        raise


@soak("soak.long_sync")
def long_sync(task: Any, ctx: Any) -> str:
    """Runs until ctx.cancelled turns true, as a sync handler should."""
    _ran(task)
    deadline = time.monotonic() + 60
    while not ctx.cancelled and time.monotonic() < deadline:
        time.sleep(0.02)
    if ctx.cancelled:
        _sync().hset(_key(SAW_CANCEL), task.id, 1)
    return "stopped"


@soak("soak.never")
def never(task: Any, ctx: Any) -> None:
    """Cancelled while still delayed: any run is a bug."""
    _ran(task)


# -- delays, debounce ---------------------------------------------------------------------

@soak("soak.delayed")
async def delayed(task: Any, ctx: Any) -> int:
    """Returns when it ran (epoch ms), for the test to compare with its delay."""
    await _aran(task)
    return int(time.time() * 1000)


@soak("soak.lead")
def lead(task: Any, ctx: Any) -> Any:
    _ran(task)
    return task.data


@soak("soak.trail")
async def trail(task: Any, ctx: Any) -> Any:
    await _aran(task)
    return task.data


@soak("soak.whoami")
def whoami(task: Any, ctx: Any) -> str:
    """Which django_remq this worker runs: the test checks it is the tree under test."""
    _ran(task)
    return str(django_remq.__file__)
