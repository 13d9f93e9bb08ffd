"""Django tasks (the Tasks framework's ``@task``) for the RemqBackend tests.

Not in INSTALLED_APPS: a worker finds them by their module path, as it would any task
module a project does not autodiscover.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import redis

from django_remq.backends.compat import TaskContext  # django.tasks or the backport
from django_remq.backends.decorator import task  # takes remq's options on Django 6.0 too

QUEUE = "dtasks"


@task(queue_name=QUEUE)
def add(a: int, b: int) -> int:
    return a + b


@task(queue_name=QUEUE)
def echo(*args: Any, **kwargs: Any) -> Any:
    return {"args": args, "kwargs": kwargs, "thread": threading.current_thread().name}


@task(queue_name=QUEUE)
async def async_echo(value: Any) -> Any:
    await asyncio.sleep(0)
    return {"value": value, "thread": threading.current_thread().name}


@task(queue_name=QUEUE)
def failing() -> None:
    raise ValueError("This task failed due to ValueError")


@task(queue_name=QUEUE)
async def async_failing() -> None:
    raise KeyError("async failure")


@task(queue_name=QUEUE)
def exits() -> None:
    raise SystemExit("This task failed due to SystemExit")


@task(queue_name=QUEUE)
def complex_return() -> Any:
    return {"a set": {1, 2}}  # not JSON: the task fails, as in Django's own backends


@task(queue_name=QUEUE, takes_context=True)
def with_context(context: TaskContext, n: int) -> Any:
    result = context.task_result
    return {"attempt": context.attempt, "id": result.id, "n": n,
            "worker_ids": result.worker_ids, "status": str(result.status)}


@task(queue_name=QUEUE, takes_context=True, attempts=2, retry_delay_ms=0)
def flaky(context: TaskContext) -> Any:
    if context.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {"attempt": context.attempt, "errors": len(context.task_result.errors)}


@task(queue_name=QUEUE, timeout_ms=300)
async def too_slow() -> None:
    await asyncio.sleep(30)


@task(queue_name=QUEUE)
def sleeps(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def _one_key(message: Any) -> str:
    return "all"


@task(queue_name=QUEUE, debounce={"window_ms": 60_000, "mode": "trailing", "key": _one_key})
def debounced(value: int) -> int:
    return value


@task(queue_name=QUEUE)
def ordered(n: int) -> int:
    """Records the run order in a Redis list of the test's prefix (the worker's env)."""
    client = redis.Redis.from_url(os.environ["REMQ_REDIS_URL"])
    client.rpush(f"{os.environ['REMQ_TEST_PREFIX']}:order", n)
    client.close()
    return n
