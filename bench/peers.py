"""django_remq beside huey and dramatiq on the same Redis, the same job; prints figures.

    pip install -e ".[bench]"    # huey and dramatiq
    python bench/peers.py [--url redis://127.0.0.1:6379/14] [--n 20000] [--runs 2]
        [--concurrency 8] [--only emit|drain]

The job INCRs a counter with a sync redis-py client (``bench/_peers.py``); our async
handler uses an asyncio client. Two measures:

- **emit one at a time**, from this plain script, sync: ``tm.emit``, huey's task call,
  dramatiq's ``send``, alternated round by round with a bare ``LPUSH`` loop (the floor:
  what an enqueue costs with nothing on top), best of ``--runs``;
- **drain**: N tasks queued, then each system's own worker command drains them with
  ``--concurrency`` threads (or slots): ``runworker``-equivalent for us (sync and async
  handler), ``huey_consumer -k thread -w C``, ``dramatiq --processes 1 --threads C``.
  The window runs from the first INCR to the N-th; CPU is the worker's process tree's
  user + system over that window (psutil), so start-up and shutdown are out.

Rates swing with the host's neighbours and its idle states (a quiet 2-core host gives
slower one-at-a-time round trips than a busy one); compare within one run, and the
fractions of the floor across runs. Not a test.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import redis

HERE = Path(__file__).resolve().parent


def peers_env(url: str, prefix: str) -> dict[str, str]:
    return {**os.environ, "PEERS_REDIS_URL": url, "PEERS_PREFIX": prefix,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}


def import_peers(url: str, prefix: str):  # type: ignore[no-untyped-def]
    """The peers' apps, built for ``prefix`` (``_peers`` reads the environment once: one
    prefix per run of this script, its keys deleted between measures)."""
    os.environ.update(peers_env(url, prefix))
    sys.path.insert(0, str(HERE))
    import _peers

    return _peers


def cleanup(r: redis.Redis, prefix: str) -> None:
    keys = list(r.scan_iter(f"*{prefix}*", count=5000))
    for i in range(0, len(keys), 5000):
        r.delete(*keys[i:i + 5000])


def bench_emit(url: str, prefix: str, n: int, runs: int) -> None:
    """Each enqueue one at a time, alternated with the LPUSH floor, best of ``runs``."""
    from django_remq.core import TaskManager

    peers = import_peers(url, prefix)
    tm = TaskManager.init(db=url, prefix=prefix)
    plain = redis.Redis.from_url(url)
    floor_key = f"{prefix}:floor"
    emitters: dict[str, Callable[[int], object]] = {
        "LPUSH (floor)": lambda i: plain.lpush(floor_key, i),
        "django_remq emit": lambda i: tm.emit("noop", data={"i": i}),
        "huey task call": peers.huey_incr,
        "dramatiq send": peers.dramatiq_incr.send,
    }
    for emit in emitters.values():
        emit(-1)  # connect, load scripts
    best = dict.fromkeys(emitters, 0.0)
    for _ in range(runs):
        for name, emit in emitters.items():
            t0 = time.perf_counter()
            for i in range(n):
                emit(i)
            best[name] = max(best[name], n / (time.perf_counter() - t0))
    floor = best["LPUSH (floor)"]
    print(f"emit one at a time, sync, {n:,} each, best of {runs}:")
    for name, rate in best.items():
        print(f"  {name:18s} {rate:8,.0f} /s   {rate / floor:4.0%} of the floor")
    cleanup(tm.conn.sync, prefix)
    tm.conn.close()
    plain.close()


def tree_cpu(proc: psutil.Process) -> float:
    """User + system seconds of ``proc`` and its live children."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def timed_window(cmd: list[str], env: dict[str, str], r: redis.Redis, counter: str,
                 n: int) -> tuple[float, float]:
    """Start ``cmd``; (seconds, worker CPU seconds) from the first INCR to the n-th."""
    with tempfile.TemporaryFile("w+") as err:  # not a pipe: a chatty worker would stall
        proc = subprocess.Popen(cmd, env=env, cwd=HERE, stdout=subprocess.DEVNULL,
                                stderr=err, text=True, start_new_session=True)
        try:
            window = watch(proc, r, counter, n)
        finally:
            stop(proc)
        if isinstance(window, str):
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd[1:4])} {window}:\n{err.read()[-2000:]}")
    return window


def watch(proc: subprocess.Popen[str], r: redis.Redis, counter: str,
          n: int) -> tuple[float, float] | str:
    """(seconds, CPU seconds) from the first INCR to the n-th, or what went wrong."""
    ps = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    while not r.exists(counter):
        if proc.poll() is not None or time.monotonic() > deadline:
            return "did not start"
        time.sleep(0.001)
    t0, cpu0 = time.perf_counter(), tree_cpu(ps)
    while int(r.get(counter) or 0) < n:  # type: ignore[arg-type]
        if proc.poll() is not None or time.monotonic() > deadline:
            return f"stopped at {r.get(counter)!r}/{n}"
        time.sleep(0.002)
    return time.perf_counter() - t0, tree_cpu(ps) - cpu0


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the worker's process group (dramatiq's children too); SIGKILL after 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def drain_one(url: str, prefix: str, n: int, concurrency: int,
              system: str) -> tuple[float, float]:
    """Queue ``n`` jobs for ``system``, run its worker: (tasks/s, CPU ms per task)."""
    from django_remq.core import TaskManager

    peers = import_peers(url, prefix)
    tm = TaskManager.init(db=url, prefix=prefix)
    c = str(concurrency)
    if system.startswith("django_remq"):
        tm.emit_many({"event": "noop", "data": {"i": i}} for i in range(n))
        kind = system.split()[1]
        cmd = [sys.executable, str(HERE / "sync_handlers.py"), "--worker", kind, "--url", url,
               "--prefix", prefix, "--concurrency", c]
    elif system == "huey":
        for i in range(n):
            peers.huey_incr(i)
        cmd = [sys.executable, "-m", "huey.bin.huey_consumer", "_peers.huey", "-k", "thread",
               "-w", c, "-q"]  # -q: no log line per task (ours and dramatiq's log none)
    else:
        for i in range(n):
            peers.dramatiq_incr.send(i)
        cmd = [sys.executable, "-m", "dramatiq", "_peers", "--processes", "1", "--threads", c]
    r = tm.conn.sync
    try:
        elapsed, cpu = timed_window(cmd, peers_env(url, prefix), r, f"{prefix}:counter", n)
    finally:
        cleanup(r, prefix)
        tm.conn.close()
    return (n - 1) / elapsed, cpu * 1000 / (n - 1)


def bench_drain(url: str, prefix: str, n: int, runs: int, concurrency: int) -> None:
    systems = ["django_remq async", "django_remq sync", "huey", "dramatiq"]
    rates: dict[str, list[float]] = {s: [] for s in systems}
    cpus: dict[str, list[float]] = {s: [] for s in systems}
    for _ in range(runs):  # alternated: each system sees the same neighbours
        for system in systems:
            rate, cpu = drain_one(url, prefix, n, concurrency, system)
            rates[system].append(rate)
            cpus[system].append(cpu)
    print(f"drain {n:,} queued jobs (each INCRs a counter), concurrency {concurrency}, "
          f"one worker process each, {runs} runs:")
    labels = {"django_remq async": "django_remq, async def handler",
              "django_remq sync": "django_remq, def handler",
              "huey": "huey, thread workers", "dramatiq": "dramatiq, 1 process"}
    for system in systems:
        shown = "  ".join(f"{v:7,.0f}" for v in rates[system])
        cpu = "  ".join(f"{v:.3f}" for v in cpus[system])
        print(f"  {labels[system]:32s} {shown} tasks/s   worker CPU {cpu} ms per task")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("REMQ_BENCH_REDIS_URL",
                                                        "redis://127.0.0.1:6379/14"))
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--only", choices=["emit", "drain"])
    args = parser.parse_args()
    try:
        import dramatiq  # noqa: F401
        import huey  # noqa: F401
    except ImportError:
        parser.error('needs the peers: pip install -e ".[bench]"')
    print(f"Redis: {args.url}   python {sys.version.split()[0]}   cores: {os.cpu_count()}")
    prefix = f"peers{uuid.uuid4().hex[:6]}"
    if args.only in (None, "emit"):
        bench_emit(args.url, prefix, min(args.n, 10_000), max(args.runs, 3))
    if args.only in (None, "drain"):
        bench_drain(args.url, prefix, args.n, args.runs, args.concurrency)


if __name__ == "__main__":
    main()
