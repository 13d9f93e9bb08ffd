"""Timing a worker command that drains ``n`` tasks, each INCRing one counter (the
benchmarks that run real worker processes share this)."""

from __future__ import annotations

import resource
import subprocess
import time
from collections.abc import Mapping

import redis
from _redis_server import delete_keys


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_drain(cmd: list[str], r: redis.Redis, counter: str, n: int, prefix: str,
                timeout: float, env: Mapping[str, str] | None = None
                ) -> tuple[float, float, int, int, str]:
    """Run ``cmd`` until the counter reaches ``n``: (seconds from the first INCR, worker CPU
    seconds, tasks done, exit code, stderr); the prefix's keys are deleted after."""
    cpu0 = children_cpu()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    while n and not r.exists(counter) and proc.poll() is None:
        time.sleep(0.001)
    t0 = time.perf_counter()
    while int(r.get(counter) or 0) < n and proc.poll() is None:  # type: ignore[arg-type]
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    _, err = proc.communicate(timeout=timeout)
    cpu = children_cpu() - cpu0
    done = int(r.get(counter) or 0)  # type: ignore[arg-type]
    delete_keys(r, f"{prefix}:*")
    return elapsed, cpu, done, proc.returncode, err
