"""Handlers of test app "alpha" (found by autodiscovery; queue "alpha")."""

from __future__ import annotations

import time
from typing import Any

from django.db import connection

from django_remq import handler


@handler("alpha.echo", queue="alpha")
def echo(task: Any, ctx: Any) -> Any:
    return {"got": task.data}


@handler(queue="alpha")
async def alpha_double(task: Any, ctx: Any) -> Any:
    return task.data * 2


@handler("alpha.slow", queue="alpha")
def slow(task: Any, ctx: Any) -> str:
    task.logger("slow task started")
    time.sleep(task.data["seconds"])
    return "finished"


@handler("alpha.flaky", queue="alpha", attempts=2, retry_delay_ms=300)
def flaky(task: Any, ctx: Any) -> int:
    if task.attempt < 2:
        raise RuntimeError("first attempt fails")
    return task.attempt


@handler("alpha.db", queue="alpha")
def uses_db(task: Any, ctx: Any) -> dict[str, bool]:
    """Reports whether this thread's DB connection was open when the task started."""
    was_open = connection.connection is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"was_open": was_open}


@handler("alpha.stuck", queue="alpha", timeout_ms=300)
def stuck(task: Any, ctx: Any) -> None:
    """Never returns in time: its thread is abandoned (the worker tests' wedge)."""
    time.sleep(3600)
