"""Shared by the tests that run real processes: worker subprocesses (engine and
``runworker_remq``), free ports, and polling until a condition holds."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
import redis

from django_remq.testing import RemqTestEnv

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, step: float = 0.05) -> bool:
    """True once ``predicate()`` is truthy, False if ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


async def await_until(predicate: Callable[[], Any], timeout: float = 15.0,
                      step: float = 0.05) -> bool:
    """:func:`wait_until` for a test on an event loop: the loop runs while it waits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return False


def pings(client: redis.Redis) -> bool:
    """Whether a Redis client gets an answer (a server coming up, or going down)."""
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def spawn_worker(url: str, prefix: str, *args: str,
                 log: IO[str] | None = None) -> subprocess.Popen[str]:
    """A ``tests.engine_worker`` subprocess, returned once it printed READY; its log goes
    to ``log`` if given (a worker that logs a lot would fill a pipe no one reads)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.engine_worker", url, prefix, *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=log or subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    return proc


def stop_worker(proc: subprocess.Popen[str], timeout: float = 15.0) -> int:
    """SIGTERM and wait; on a hang, show where the worker is stuck before failing."""
    proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        if shutil.which("py-spy"):
            subprocess.run(["py-spy", "dump", "--pid", str(proc.pid)], check=False)
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"worker did not stop within {timeout}s; its log:\n{err[-4000:]}")


def worker_env(test_env: RemqTestEnv, **extra: str) -> dict[str, str]:
    """The environment of a ``runworker_remq`` subprocess on ``test_env``'s Redis and prefix."""
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.django_settings_worker",
            "REMQ_REDIS_URL": test_env.redis_url, "REMQ_TEST_PREFIX": test_env.prefix,
            "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **extra}


def manage(*args: str) -> list[str]:
    return [sys.executable, "-m", "django", "runworker_remq", *args]


def run(cmd: list[str], environ: dict[str, str], timeout: float = 30) -> Any:
    return subprocess.run(cmd, env=environ, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)
