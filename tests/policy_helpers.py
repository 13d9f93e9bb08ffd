"""Helpers for the policy tests: run a worker until a condition holds."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django_remq.core import TaskManager

ROOT = Path(__file__).resolve().parent.parent


async def run_until(tm: TaskManager, cond: Callable[[], bool], timeout: float = 10.0,
                    settle: float = 0.0) -> float:
    """Work (not burst: delayed jobs and cron ticks too) until ``cond()``; returns seconds."""
    start = time.monotonic()
    await tm.start()
    try:
        while not cond():
            if time.monotonic() - start > timeout:
                raise AssertionError(f"condition not met within {timeout}s")
            await asyncio.sleep(0.02)
        if settle:
            await asyncio.sleep(settle)
    finally:
        await tm.stop()
    return time.monotonic() - start


def spawn_worker(url: str, prefix: str, mode: str, seconds: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.policy_worker", url, prefix, mode,
                             str(seconds)], cwd=ROOT, env=env, stderr=subprocess.PIPE)


def wait_all(procs: list[subprocess.Popen[bytes]], timeout: float = 60) -> None:
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err.decode()[-2000:]
