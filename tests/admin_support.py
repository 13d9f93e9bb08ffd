"""Helpers for the admin-page tests: a REMQ pointing at the test prefix, jobs in every
state made by the real engine, and a worker running on a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.test import override_settings

from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk

PROCESSOR = {"dlq": {}}


@contextmanager
def remq_at(redis_url: str, prefix: str, **extra: Any) -> Iterator[None]:
    with override_settings(REMQ={"REDIS_URL": redis_url, "PREFIX": prefix,
                                 "PROCESSOR": PROCESSOR, **extra}):
        yield


@pytest.fixture
def sdk(redis_url: str, prefix: str) -> Iterator[Sdk]:
    """The admin pages' settings on the test prefix, and an Sdk there (a module may
    define its own ``sdk``, as the Sdk's tests do)."""
    with remq_at(redis_url, prefix):
        yield Sdk(redis_url, prefix=prefix)


@pytest.fixture
def jobs(sdk: Sdk, redis_url: str, prefix: str) -> dict[str, str]:
    """:func:`make_jobs` under the admin's settings (``sdk``)."""
    return make_jobs(redis_url, prefix)


def boom(task: Any, ctx: Any) -> None:
    raise RuntimeError(f"boom in {task.name}")


def ok(task: Any, ctx: Any) -> dict[str, Any]:
    task.logger("working")
    ctx.socket.update({"step": "done"}, 100)
    return {"done": True}


def make_jobs(redis_url: str, prefix: str) -> dict[str, str]:
    """One job per interesting state, run by the real engine: waiting, delayed, paused,
    completed, failed (and dead-lettered), cancelled. Returns status -> job id."""
    tm = TaskManager.init(db=redis_url, prefix=prefix, processor=PROCESSOR)  # type: ignore[arg-type]
    tm.register_handler("send-email", ok)
    tm.register_handler("charge-card", boom, options={"attempts": 0})
    ids = {"completed": tm.emit("send-email", data={"to": "ada@example.com"}),
           "failed": tm.emit("charge-card", data={"amount": 42})}
    asyncio.run(tm.run(burst=True))
    ids["waiting"] = tm.emit("send-email", data={"to": "bob@example.com"})
    ids["delayed"] = tm.emit("send-email", data={"n": 2}, options={"delay_ms": 3_600_000})
    ids["paused"] = tm.emit("send-email", data={"n": 3})
    ids["cancelled"] = tm.emit("send-email", data={"n": 4})
    sdk = Sdk(redis_url, prefix=prefix)
    sdk.pause_job(ids["paused"], "default")
    sdk.cancel_job(ids["cancelled"], "default")
    tm.conn.close()
    return ids


@contextmanager
def worker_thread(tm: TaskManager) -> Iterator[None]:
    """``tm.run()`` on its own thread and event loop until the block ends."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        started.set()
        await tm.run(stop_event=stop[0])

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(20), "worker thread did not start"
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(60)
        loop.close()
