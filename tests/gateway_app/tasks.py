"""Handlers the gateway tests emit over WebSockets (also autodiscovered by the
subprocesses of the end-to-end tests, through tests.django_settings_gateway)."""

from __future__ import annotations

import asyncio
from typing import Any

from django_remq import handler


@handler("live.report", expose=True, attempts=2, retry_delay_ms=200)
async def report(task: Any, ctx: Any) -> str:
    """``steps`` progress updates; the first attempt fails when ``fail_first``."""
    steps = int(task.data.get("steps", 3))
    for n in range(1, steps + 1):
        ctx.socket.update({"step": n, "attempt": task.attempt}, round(100 * n / steps))
        await asyncio.sleep(float(task.data.get("pause", 0.05)))
    if task.data.get("fail_first") and task.attempt == 1:
        raise ConnectionError("upstream timed out")
    if task.data.get("fail"):
        raise ValueError("bad report")
    return "done"


@handler("live.burst", expose=True)
def burst(task: Any, ctx: Any) -> int:
    """A sync handler (a worker thread) sending ``n`` updates as fast as it can."""
    n = int(task.data.get("n", 1000))
    for i in range(1, n + 1):
        ctx.socket.update({"i": i}, i)
    return n


@handler("live.secret")
def secret(task: Any, ctx: Any) -> str:
    """Not exposed: clients may not emit it unless GATEWAY['allowed_events'] says so."""
    return "classified"


HANDLERS = [("live.report", report), ("live.burst", burst), ("live.secret", secret)]


def allow_anyone(scope: Any, *args: Any) -> bool:
    """A custom policy rule (dotted path in GATEWAY)."""
    return True


async def deny_all(scope: Any, *args: Any) -> bool:
    return False
