"""Test helpers for projects using django_remq (and for our own tests); a pytest plugin.

Installing django-remq registers this module as a pytest plugin (entry point
``pytest11``), so the ``remq`` and ``remq_fake`` fixtures need no import.

``remq_test_settings()`` points ``REMQ`` at a real Redis (default: the configured
one) or an in-process fake one, under a fresh key prefix that is deleted
afterwards. ``run_until_idle()`` runs the real worker in this process until every
task emitted so far, with its retries and delayed runs, reached a final state::

    def test_signup_sends_mail(remq):
        client.post("/signup/", {...})       # the view emits "send-welcome"
        remq.run_until_idle()
        assert mail.outbox[0].subject == "Welcome"

Handlers run in worker threads with their own database connections: when they
read rows the test wrote, use ``@pytest.mark.django_db(transaction=True)``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.test import override_settings

from .api import get_task_manager, reset_task_manager
from .conf import ENV_REDIS_URL, get_settings
from .conf import reset as reset_settings
from .core import TaskManager
from .core.sdk import Sdk
from .core.types import AdminJobData
from .errors import ImproperlyConfiguredRemq

BURST_BLOCK_MS = 50

_fake_lock = threading.Lock()
_fake_url: str | None = None


def fake_redis_url() -> str:
    """URL of an in-process fakeredis TCP server (started once per process)."""
    global _fake_url
    with _fake_lock:
        if _fake_url is None:
            _fake_url = start_fake_redis()
        return _fake_url


def start_fake_redis(host: str = "127.0.0.1", port: int = 0) -> str:
    """Start fakeredis's TCP server in a daemon thread; returns its ``redis://`` URL."""
    try:
        from fakeredis import TcpFakeServer
    except ImportError:
        raise ImproperlyConfiguredRemq(
            "the fake Redis needs fakeredis with Lua: pip install 'fakeredis[lua]' "
            "(or django-remq[test])") from None
    server = TcpFakeServer((host, port))
    # One thread per connection, and fakeredis makes them non-daemon: the interpreter
    # would wait for them at exit, so a process with a client still connected (the demo's
    # worker, its channel layer) could not be stopped by Ctrl-C or SIGTERM.
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="remq-fakeredis", daemon=True).start()
    return f"redis://{host}:{server.server_address[1]}/0"


@dataclass(frozen=True)
class RemqTestEnv:
    redis_url: str
    prefix: str

    @property
    def task_manager(self) -> TaskManager:
        return get_task_manager()

    def run_until_idle(self, timeout: float = 10.0, queues: Sequence[str] | None = None) -> None:
        run_until_idle(timeout, queues)

    async def arun_until_idle(self, timeout: float = 10.0,
                              queues: Sequence[str] | None = None) -> None:
        await arun_until_idle(timeout, queues)

    def get_job(self, job_id: str, queue: str = "default") -> AdminJobData | None:
        return get_job(job_id, queue)


@contextmanager
def remq_test_settings(redis_url: str | None = None, *, fake: bool = False,
                       prefix: str | None = None, **overrides: Any) -> Iterator[RemqTestEnv]:
    """``REMQ`` on an isolated prefix (keys removed on exit); ``overrides`` are more REMQ
    keys in any case (``concurrency=4``, ``PROCESSOR={...}``)."""
    url = fake_redis_url() if fake else (redis_url or get_settings().redis_url)
    prefix = prefix or f"remqtest-{uuid.uuid4().hex[:10]}"
    base = getattr(settings, "REMQ", None) or {}
    remq = {**base, **{k.upper(): v for k, v in overrides.items()},
            "REDIS_URL": url, "PREFIX": prefix}
    saved_env = os.environ.pop(ENV_REDIS_URL, None)  # the explicit URL wins here
    try:
        with override_settings(REMQ=remq):
            yield RemqTestEnv(url, prefix)
            _delete_prefix(get_task_manager(), prefix)
    finally:
        if saved_env is not None:
            os.environ[ENV_REDIS_URL] = saved_env
        reset_task_manager()
        reset_settings()


def _delete_prefix(tm: TaskManager, prefix: str) -> None:
    client = tm.conn.sync
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])


def run_until_idle(timeout: float = 10.0, queues: Sequence[str] | None = None) -> None:
    """Process everything emitted so far, in this process, with the real engine.

    Runs burst workers until no task is waiting, running, or scheduled (retries,
    ``delay_ms``); cron repeats are not waited for. Raises ``TimeoutError`` when
    work remains after ``timeout`` seconds.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("run_until_idle() is called inside an event loop; "
                           "use `await arun_until_idle()` there")
    asyncio.run(arun_until_idle(timeout, queues))


async def arun_until_idle(timeout: float = 10.0, queues: Sequence[str] | None = None) -> None:
    tm = get_task_manager()
    served = list(queues or get_settings().queues or tm.queues)
    deadline = time.monotonic() + timeout
    try:
        while True:
            await _burst(tm, served, deadline, timeout)
            wait = await _next_due_in(tm, served)
            if wait is None:
                return
            if time.monotonic() + wait > deadline:
                raise TimeoutError(f"run_until_idle: a scheduled task is due in {wait:.1f}s, "
                                   f"after the {timeout}s bound; raise timeout=")
            await asyncio.sleep(wait)
    finally:
        await tm.conn.aclose()


async def _burst(tm: TaskManager, queues: list[str], deadline: float, timeout: float) -> None:
    """One burst run of the real worker; returns once it found nothing left to do."""
    await tm.start(queues, burst=True)
    assert tm.processor is not None
    # a test waits on every empty read: block briefly instead of the worker's 1 s
    tm.processor.consumer.reader.block_ms = BURST_BLOCK_MS
    try:
        await asyncio.wait_for(tm.processor.consumer.idle.wait(),
                               max(deadline - time.monotonic(), 0.01))
    except TimeoutError:
        raise TimeoutError(
            f"run_until_idle: queues {queues} still had work after {timeout}s (a paused "
            "queue, a task that never ends, or too much work for the bound)") from None
    finally:
        await tm.stop()


async def _next_due_in(tm: TaskManager, queues: list[str]) -> float | None:
    """Seconds until the next scheduled task that is not a cron repeat, or None."""
    client = tm.conn.aio
    now_ms = time.time() * 1000
    best: float | None = None
    for queue in queues:
        qk = tm.keys.queue(queue)
        scheduled: Any = await client.zrange(qk.delayed, 0, 99, withscores=True)
        for job_id, score in scheduled:
            name: Any = await client.hget(qk.job(job_id), "name")  # type: ignore[misc]
            entry = tm.handler_for(queue, name) if name else None
            if entry is not None and entry.options.get("repeat"):
                continue
            best = float(score) if best is None else min(best, float(score))
    return None if best is None else max(best - now_ms, 0) / 1000 + 0.01


def get_job(job_id: str, queue: str = "default") -> AdminJobData | None:
    """A job record as stored (status, result, errors, logs, progress)."""
    tm = get_task_manager()
    return Sdk(tm.conn, prefix=tm.keys.prefix).get_job(job_id, queue)


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixture
    pass
else:
    @pytest.fixture
    def remq() -> Iterator[RemqTestEnv]:
        """REMQ on an isolated prefix of the configured Redis; see :func:`remq_test_settings`."""
        with remq_test_settings() as env:
            yield env

    @pytest.fixture
    def remq_fake() -> Iterator[RemqTestEnv]:
        """Like ``remq``, on an in-process fakeredis server (no Redis needed)."""
        with remq_test_settings(fake=True) as env:
            yield env
