"""Drain with ``runworker_remq --processes 1`` and ``--processes 2``; prints figures.

    python bench/processes.py [--url redis://127.0.0.1:6379/14] [--n 20000]
        [--concurrency N] [--runs 2] [--kinds async,sync] [--cpu-affinity auto]

N tasks are queued, then ``runworker_remq --burst --processes P`` (the real command,
the real Django app in bench/benchapp) drains them; each task INCRs a counter, with
an async client in the ``async def`` handler and a sync one in the ``def`` handler.
The clock runs from the first INCR to the N-th. Prints tasks/s and the workers' CPU
time per task (user + system of the supervisor and its children, the start-up and
shutdown of an empty burst run subtracted). Without ``--concurrency`` the workers use
the ``REMQ['CONCURRENCY']`` default: this measures the defaults. On a shared host the
rate swings with the neighbours; the CPU per task much less. ``--cpu-affinity`` passes
through to the command (``auto``: each worker process on its own CPU). Not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

import redis
from _timed import timed_drain

HERE = Path(__file__).resolve().parent
EVENTS = {"async": "bench.incr", "sync": "bench.incr_sync"}



def drain(url: str, n: int, processes: int, kind: str,
          concurrency: int | None, cpus: str | None = None) -> tuple[float, float]:
    """Tasks/s and the CPU seconds of the worker command (``n`` = 0: start-up only)."""
    from django_remq.core import TaskManager

    prefix = f"benchproc{uuid.uuid4().hex[:6]}"
    tm = TaskManager.init(db=url, prefix=prefix)
    tm.emit_many({"event": EVENTS[kind], "queue": "bench", "data": {"i": i}}
                 for i in range(n))
    r: redis.Redis = tm.conn.sync
    counter = f"{prefix}:counter"
    env = {**os.environ, "BENCH_REDIS_URL": url, "BENCH_PREFIX": prefix,
           "DJANGO_SETTINGS_MODULE": "_tasks_settings",
           "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    cmd = [sys.executable, "-m", "django", "runworker_remq", "--burst", "-v", "0",
           "--queues", "bench", "--processes", str(processes)]
    cmd += ["--concurrency", str(concurrency)] if concurrency else []
    cmd += ["--cpu-affinity", cpus] if cpus else []
    elapsed, cpu, done, code, err = timed_drain(cmd, r, counter, n, prefix, 300, env)
    tm.conn.close()
    if code or done < n:
        raise RuntimeError(f"worker exited {code} after {done}/{n} tasks:\n"
                           f"{err[-3000:]}")
    return (n - 1) / elapsed if n else 0.0, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("REMQ_BENCH_REDIS_URL",
                                                        "redis://127.0.0.1:6379/14"))
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, help="default: REMQ['CONCURRENCY']")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--kinds", default="async,sync")
    parser.add_argument("--cpu-affinity", metavar="auto|CPUS",
                        help="runworker_remq --cpu-affinity")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    conc = args.concurrency or "default"
    pinned = f"; --cpu-affinity {args.cpu_affinity}" if args.cpu_affinity else ""
    print(f"{os.cpu_count()} CPUs; concurrency {conc} per process; {args.n:,} tasks per run"
          f"{pinned}")
    for kind in kinds:
        for processes in (1, 2):
            startup = drain(args.url, 0, processes, kind, args.concurrency,
                            args.cpu_affinity)[1]
            rates, cpu_ms = [], []
            for _ in range(args.runs):
                rate, cpu = drain(args.url, args.n, processes, kind, args.concurrency,
                                  args.cpu_affinity)
                rates.append(rate)
                cpu_ms.append(max(cpu - startup, 0.0) * 1000 / args.n)
            print(f"{kind:5s} handler, --processes {processes}: "
                  + "  ".join(f"{v:7,.0f}" for v in rates) + " tasks/s   CPU per task "
                  + "  ".join(f"{v:.3f}" for v in cpu_ms) + " ms")


if __name__ == "__main__":
    main()
