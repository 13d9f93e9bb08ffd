"""The demo's handlers: found by django_remq's autodiscovery (like admin.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from django_remq import HandlerContext, Task, handler


@handler("send-welcome-email")
def send_welcome_email(task: Task, ctx: HandlerContext) -> dict[str, str]:
    """A plain sync task: runs in a worker thread, may use the ORM."""
    task.logger(f"sending to {task.data['email']}")
    time.sleep(0.2)  # talking to an SMTP server...
    return {"sent_to": task.data["email"], "body": f"{ctx.greeting}, {task.data['name']}!"}


@handler("fetch-weather")
async def fetch_weather(task: Task, ctx: HandlerContext) -> dict[str, Any]:
    """An async task: runs on the worker's event loop."""
    await asyncio.sleep(0.3)  # an HTTP call with httpx/aiohttp...
    return {"city": task.data.get("city", "Paris"), "temp_c": 21, "worker_host": ctx.host}


@handler("flaky-payment", attempts=3, retry_delay_ms=1000)
def flaky_payment(task: Task, ctx: HandlerContext) -> str:
    """Fails twice, then succeeds: retried 1 s apart (PROCESSOR['retry'] allows it)."""
    if task.attempt < 3:
        raise ConnectionError(f"payment gateway timed out (attempt {task.attempt})")
    return f"charged {task.data['amount']} on attempt {task.attempt}"


@handler("heartbeat", repeat={"pattern": "*/30 * * * * *"})
def heartbeat(task: Task, ctx: HandlerContext) -> float:
    """A cron task: every 30 seconds (seconds-first pattern), once across all workers."""
    return time.time()


@handler("generate-report", timeout_ms=120_000, attempts=2, retry_delay_ms=1000, expose=True)
async def generate_report(task: Task, ctx: HandlerContext) -> str:
    """A long task reporting progress: each ``ctx.socket.update`` reaches the page that
    emitted it over the WebSocket gateway (``expose=True`` lets signed-in users emit it),
    and is stored on the job. With ``fail_first`` the first attempt fails half-way, to
    show the retry notice."""
    steps = ["fetching", "aggregating", "rendering", "uploading"]
    for n, step in enumerate(steps, 1):
        if task.data.get("fail_first") and task.attempt == 1 and n == 3:
            raise ConnectionError("the report service timed out")
        ctx.socket.update({"step": step, "attempt": task.attempt}, round(100 * n / len(steps)))
        task.logger(f"{step}...")
        await asyncio.sleep(task.data.get("seconds_per_step", 1))
    ctx.emit("send-welcome-email", data={"email": "boss@example.com", "name": "Boss"})
    return f"report {task.id[:8]} ready"
