"""The Django Tasks backend against plain @handler jobs, same no-op, same engine; prints figures.

    python bench/tasks.py [--url redis://127.0.0.1:6379/14] [--n 5000]

Measures enqueue rate (``task.enqueue()`` vs ``emit()``) and the Python each runs besides
its I/O, and the drain rate of N queued jobs by ``runworker_remq --burst`` (a real worker
process; its start-up time, measured on an empty queue, is subtracted). Not a test:
figures vary with the machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from functools import partial
from pathlib import Path

from _python_cost import python_us
from _redis_server import delete_keys

HERE = Path(__file__).resolve().parent


def setup(url: str, prefix: str) -> dict[str, str]:
    env = {**os.environ, "BENCH_REDIS_URL": url, "BENCH_PREFIX": prefix,
           "DJANGO_SETTINGS_MODULE": "_tasks_settings",
           "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    os.environ.update({k: env[k] for k in ("BENCH_REDIS_URL", "BENCH_PREFIX",
                                           "DJANGO_SETTINGS_MODULE")})
    sys.path[:0] = [str(HERE), str(HERE.parent)]
    import django

    django.setup()
    return env


def burst(env: dict[str, str], concurrency: int) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "django", "runworker_remq", "--burst", "-v", "0",
                    "--queues", "bench", "--concurrency", str(concurrency)],
                   env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    env = setup(args.url, f"bench{uuid.uuid4().hex[:6]}")
    from benchapp.tasks import noop_task

    from django_remq import emit, get_task_manager

    tm = get_task_manager()
    try:
        noop_task.enqueue(-1)
        emit("bench.noop", data={"args": [-1]}, queue="bench")  # connect, load scripts
        startup = min(burst(env, 1) for _ in range(2))
        print(f"worker start-up (empty queue, subtracted below): {startup:.2f} s")
        for label, one in (("django task.enqueue()", lambda i: noop_task.enqueue(i)),
                           ("remq emit()          ", lambda i: emit(
                               "bench.noop", data={"args": [i]}, queue="bench"))):
            print(f"{label}: Python besides the I/O {python_us(tm, partial(one, 1)):5.1f} us")
            t0 = time.perf_counter()
            for i in range(args.n):
                one(i)
            rate = args.n / (time.perf_counter() - t0)
            print(f"{label}: enqueue {rate:8,.0f}/s", end="   ")
            drained = burst(env, 16) - startup
            print(f"drain {args.n:,} at concurrency 16: {args.n / max(drained, 1e-3):8,.0f}/s")
    finally:
        delete_keys(tm.conn.sync, f"{tm.keys.prefix}:*")


if __name__ == "__main__":
    main()
