"""django_remq beside huey and dramatiq on the same Redis, the same jobs; prints figures.

    pip install -e ".[bench]"    # huey and dramatiq
    python bench/peers.py [--url redis://127.0.0.1:6379/14] [--n 20000] [--runs 2]
        [--concurrency 8] [--count 300] [--only emit|drain|latency] [--cpu-affinity CPU]

The jobs (``bench/_peers.py``) INCR a counter, or note their pick-up latency, with a
sync redis-py client; our ``async def`` handler uses an asyncio one. Three measures:

- **emit one at a time**, from this plain script, sync: ``tm.emit``, huey's task call,
  dramatiq's ``send``, alternated round by round with a bare ``LPUSH`` loop (the floor:
  what an enqueue costs with nothing on top), best of ``--runs``;
- **drain**: N jobs queued, then each system's own worker command drains them with
  ``--concurrency`` threads (or slots): our worker (``def`` and ``async def`` handlers),
  ``huey_consumer -k thread -w C -q``, ``dramatiq --processes 1 --threads C``. The window
  runs from the first INCR to the N-th; CPU is the worker's process tree's user +
  system over that window (psutil), so start-up and shutdown are out;
- **pick-up latency**: the same workers, idle; ``--count`` jobs emitted 5 ms apart,
  each stamped just before its emit; the handler notes now minus the stamp.

``--cpu-affinity CPU`` runs every worker command under ``taskset -c CPU``: the peers get
what ``REMQ['CPU_AFFINITY']`` gives ours (their threads' GIL hand-overs on one core).

Rates swing with the host's neighbours and its idle states (a quiet 2-core host gives
slower one-at-a-time round trips than a busy one); compare within one run, and the
fractions of the floor across runs. Not a test.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
from _redis_server import delete_keys

HERE = Path(__file__).resolve().parent


@dataclass
class System:
    """A system under test: its worker command and its two enqueues."""

    label: str
    worker: Callable[[int], list[str]]  # concurrency -> the worker's command line
    incr: Callable[[int], object]
    stamp: Callable[[float], object]


def systems(peers: Any, tm: Any, cpu: int | None = None) -> dict[str, System]:
    py = [sys.executable] if cpu is None else ["taskset", "-c", str(cpu), sys.executable]

    def ours(kind: str) -> Callable[[int], list[str]]:
        return lambda c: [*py, str(HERE / "_peers.py"), kind, str(c)]

    def remq_incr(i: int) -> object:
        return tm.emit("incr", data={"i": i})

    def remq_stamp(t: float) -> object:
        return tm.emit("stamp", data={"t": t})

    return {
        "remq-async": System("django_remq, async def handler", ours("async"),
                             remq_incr, remq_stamp),
        "remq-sync": System("django_remq, def handler", ours("sync"), remq_incr, remq_stamp),
        "huey": System("huey, thread workers",  # -q: no log line per task (as ours)
                       lambda c: [*py, "-m", "huey.bin.huey_consumer", "_peers.huey", "-k",
                                  "thread", "-w", str(c), "-q"],
                       peers.huey_incr, peers.huey_stamp),
        "dramatiq": System("dramatiq, 1 process",
                           lambda c: [*py, "-m", "dramatiq", "_peers", "--processes", "1",
                                      "--threads", str(c)],
                           peers.dramatiq_incr.send, peers.dramatiq_stamp.send),
    }


def peers_env(url: str, prefix: str) -> dict[str, str]:
    return {**os.environ, "PEERS_REDIS_URL": url, "PEERS_PREFIX": prefix,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}


def setup(url: str, prefix: str, cpu: int | None = None) -> tuple[dict[str, System], Any]:
    """The systems, built for ``prefix`` (``_peers`` reads the environment once: one
    prefix per run of this script, its keys deleted between measures), and our manager."""
    from django_remq.core import TaskManager

    os.environ.update(peers_env(url, prefix))
    sys.path.insert(0, str(HERE))
    import _peers

    tm = TaskManager.init(db=url, prefix=prefix)
    return systems(_peers, tm, cpu), tm


def cleanup(r: redis.Redis, prefix: str) -> None:
    delete_keys(r, f"*{prefix}*")


def bench_emit(url: str, prefix: str, n: int, runs: int) -> None:
    """Each enqueue one at a time, alternated with the LPUSH floor, best of ``runs``."""
    found, tm = setup(url, prefix)
    plain = redis.Redis.from_url(url)
    floor_key = f"{prefix}:floor"
    emitters: dict[str, Callable[[int], object]] = {
        "LPUSH (floor)": lambda i: plain.lpush(floor_key, i),
        "django_remq emit": found["remq-async"].incr,
        "huey task call": found["huey"].incr,
        "dramatiq send": found["dramatiq"].incr,
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
    cleanup(plain, prefix)
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


def with_worker(cmd: list[str], env: dict[str, str],
                measure: Callable[[psutil.Process], Any]) -> Any:
    """Run ``measure`` with ``cmd`` running; it returns the figures, or a string saying
    what went wrong (raised with the worker's stderr)."""
    with tempfile.TemporaryFile("w+") as err:  # not a pipe: a chatty worker would stall
        proc = subprocess.Popen(cmd, env=env, cwd=HERE, stdout=subprocess.DEVNULL,
                                stderr=err, text=True, start_new_session=True)
        try:
            figures = measure(psutil.Process(proc.pid))
        finally:
            stop(proc)
        if isinstance(figures, str):
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd[1:4])} {figures}:\n{err.read()[-2000:]}")
    return figures


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the worker's process group (dramatiq's children too); SIGKILL after 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def until(ready: Callable[[], bool], ps: psutil.Process, timeout: float = 120) -> bool:
    """Poll ``ready``; ``False`` if the worker exited or the time ran out first."""
    deadline = time.monotonic() + timeout
    while not ready():
        try:
            exited = ps.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            exited = True
        if exited or time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def drain_one(url: str, prefix: str, n: int, concurrency: int, name: str,
              cpu: int | None = None) -> tuple[float, float]:
    """Queue ``n`` jobs for system ``name``, run its worker: (tasks/s, CPU ms per task)."""
    found, tm = setup(url, prefix, cpu)
    system = found[name]
    if name.startswith("remq"):
        tm.emit_many({"event": "incr", "data": {"i": i}} for i in range(n))
    else:
        for i in range(n):
            system.incr(i)
    r = tm.conn.sync
    counter = f"{prefix}:counter"

    def measure(ps: psutil.Process) -> tuple[float, float] | str:
        if not until(lambda: bool(r.exists(counter)), ps):
            return "did not start"
        t0, cpu0 = time.perf_counter(), tree_cpu(ps)
        if not until(lambda: int(r.get(counter) or 0) >= n, ps):
            return f"stopped at {r.get(counter)!r}/{n}"
        return time.perf_counter() - t0, tree_cpu(ps) - cpu0

    try:
        elapsed, cpu = with_worker(system.worker(concurrency), peers_env(url, prefix), measure)
    finally:
        cleanup(r, prefix)
    return (n - 1) / elapsed, cpu * 1000 / (n - 1)


def latency_one(url: str, prefix: str, count: int, concurrency: int, name: str,
                cpu: int | None = None) -> tuple[float, float]:
    """p50 and p99 ms from the stamp before an emit to the handler, idle worker."""
    found, tm = setup(url, prefix, cpu)
    system = found[name]
    r = tm.conn.sync
    key = f"{prefix}:latency"

    def measure(ps: psutil.Process) -> list[float] | str:
        system.stamp(time.time())  # the first one waits for the worker to be up
        if not until(lambda: bool(r.llen(key)), ps):
            return "did not start"
        time.sleep(0.3)
        r.delete(key)
        for _ in range(count):
            system.stamp(time.time())
            time.sleep(0.005)
        if not until(lambda: r.llen(key) >= count, ps, timeout=30):
            return f"noted {r.llen(key)}/{count}"
        return sorted(float(x) * 1000 for x in r.lrange(key, 0, -1))

    try:
        values = with_worker(system.worker(concurrency), peers_env(url, prefix), measure)
    finally:
        cleanup(r, prefix)
    return statistics.median(values), values[int(len(values) * 0.99) - 1]


def bench_each(what: str, runs: int, one: Callable[[str], tuple[float, float]],
               show: Callable[[tuple[float, float]], str]) -> None:
    """``one(system)`` for every system, ``runs`` times alternated (each sees the same
    neighbours), printed a line per system."""
    results: dict[str, list[tuple[float, float]]] = {}
    for _ in range(runs):
        for name in ("remq-async", "remq-sync", "huey", "dramatiq"):
            results.setdefault(name, []).append(one(name))
    print(what)
    labels = {"remq-async": "django_remq, async def handler",
              "remq-sync": "django_remq, def handler", "huey": "huey, thread workers",
              "dramatiq": "dramatiq, 1 process"}
    for name, figures in results.items():
        print(f"  {labels[name]:32s} " + "   ".join(show(f) for f in figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("REMQ_BENCH_REDIS_URL",
                                                        "redis://127.0.0.1:6379/14"))
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--count", type=int, default=300, help="jobs timed for the latency")
    parser.add_argument("--only", choices=["emit", "drain", "latency"])
    parser.add_argument("--cpu-affinity", type=int, metavar="CPU",
                        help="run every worker command under taskset -c CPU")
    args = parser.parse_args()
    try:
        import dramatiq  # noqa: F401
        import huey  # noqa: F401
    except ImportError:
        parser.error('needs the peers: pip install -e ".[bench]"')
    print(f"Redis: {args.url}   python {sys.version.split()[0]}   cores: {os.cpu_count()}")
    prefix = f"peers{uuid.uuid4().hex[:6]}"
    url, c, cpu = args.url, args.concurrency, args.cpu_affinity
    if cpu is not None:
        print(f"every worker pinned to CPU {cpu} (taskset)")
    if args.only in (None, "emit"):
        bench_emit(url, prefix, min(args.n, 10_000), max(args.runs, 3))
    if args.only in (None, "drain"):
        bench_each(f"drain {args.n:,} queued jobs (each INCRs a counter), concurrency {c}, "
                   f"one worker process each, {args.runs} runs:", args.runs,
                   lambda name: drain_one(url, prefix, args.n, c, name, cpu),
                   lambda f: f"{f[0]:7,.0f} tasks/s at {f[1]:.3f} ms CPU per task")
    if args.only in (None, "latency"):
        bench_each(f"pick-up latency, idle worker, {args.count} jobs 5 ms apart, "
                   f"concurrency {c}, {args.runs} runs:", args.runs,
                   lambda name: latency_one(url, prefix, args.count, c, name, cpu),
                   lambda f: f"p50 {f[0]:5.2f} ms  p99 {f[1]:5.2f} ms")


if __name__ == "__main__":
    main()
