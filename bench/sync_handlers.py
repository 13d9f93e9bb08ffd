"""Drain rate of plain ``def`` handlers against ``async def`` ones; prints figures.

    python bench/sync_handlers.py [--url redis://127.0.0.1:6379/14] [--n 20000]
        [--concurrency 8] [--runs 2] [--profile DIR] [--cpu-affinity CPU] [--unpinned]

N tasks are queued, then one worker process (the engine, no Django) drains them;
each task INCRs a counter, with an async client in the async handler and a sync
client in the sync one. Prints tasks/s for both and the sync/async ratio (the
target is >= 80 %), and the worker's CPU time per task (user + system, start-up
excluded): on a busy shared host the rate swings with the neighbours, the CPU cost
much less. Then the handlers' INCR alone, with no engine, from as many plain threads
and asyncio tasks: the part of the gap that is CPython's (blocking I/O on threads hands
the GIL back and forth) and not the engine's. ``--profile DIR`` runs each worker under
``py-spy record`` (``pip install py-spy``; GIL holder only) and prints the profile's top
entries. ``--cpu-affinity CPU`` pins each worker process to that CPU (what
``REMQ['CPU_AFFINITY'] = [CPU]`` does). By default each worker runs as a user gets it:
its loop and slot threads share one core, the handlers' native work keeps every CPU
(``CPU_AFFINITY = "threads"``); ``--unpinned`` turns that off (``CPU_AFFINITY = None``,
the default before it), for the figures before and after.
Not a test: figures vary with the machine; compare the ratio across hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import sys
import uuid
from pathlib import Path

from _timed import timed_drain

HERE = Path(__file__).resolve()


def run_worker(url: str, prefix: str, concurrency: int, kind: str, cpu: int | None,
               pin_threads: bool = True) -> None:
    """The worker side (``--worker``): serve until the queue is empty, then exit."""
    import redis
    import redis.asyncio

    from django_remq.core import TaskManager
    from django_remq.core.worker import affinity

    if cpu is not None:
        affinity.pin(cpu)

    sync_client = redis.Redis.from_url(url)
    async_client = redis.asyncio.Redis.from_url(url)
    counter = f"{prefix}:counter"

    def sync_noop(task: object, ctx: object) -> None:
        sync_client.incr(counter)

    async def async_noop(task: object, ctx: object) -> None:
        await async_client.incr(counter)

    async def main() -> None:
        # pin_threads only when off: --base runs this worker on versions without it
        processor: dict[str, object] = {"max_logs_per_task": 10}
        if not pin_threads:
            processor["pin_threads"] = False
        tm = TaskManager.init(db=url, prefix=prefix, concurrency=concurrency,
                              processor=processor)  # type: ignore[arg-type]
        tm.register_handler(event="noop", handler=sync_noop if kind == "sync" else async_noop)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: None)
        await tm.run(burst=True)
        await async_client.aclose()

    asyncio.run(main())



def drain(url: str, n: int, concurrency: int, kind: str,
          profile: Path | None, cpu: int | None = None,
          unpinned: bool = False) -> tuple[float, float]:
    """Tasks/s and the worker's CPU seconds (``n`` = 0: start-up and shutdown only)."""
    from django_remq.core import TaskManager

    prefix = f"benchsync{uuid.uuid4().hex[:6]}"
    tm = TaskManager.init(db=url, prefix=prefix)
    tm.emit_many({"event": "noop", "data": {"i": i}} for i in range(n))
    r = tm.conn.sync
    counter = f"{prefix}:counter"
    cmd = [sys.executable, str(HERE), "--worker", kind, "--url", url, "--prefix", prefix,
           "--concurrency", str(concurrency)]
    cmd += ["--cpu-affinity", str(cpu)] if cpu is not None else []
    cmd += ["--unpinned"] if unpinned else []
    if profile is not None:
        cmd = ["py-spy", "record", "--format", "raw", "-o", str(profile / f"{kind}-{prefix}.txt"),
               "--rate", "250", "--gil", "--nonblocking", "--", *cmd]
    elapsed, cpu, done, _, err = timed_drain(cmd, r, counter, n, prefix, 120)
    tm.conn.close()
    if done < n:
        raise RuntimeError(f"{kind} worker stopped after {done}/{n} tasks:\n{err[-3000:]}")
    return (n - 1) / elapsed if n else 0.0, cpu  # the clock starts at the first INCR


def client_floor(url: str, n: int, concurrency: int) -> dict[str, tuple[float, float]]:
    """The handlers' own INCR with no engine: from ``concurrency`` plain threads on a sync
    client, and from as many asyncio tasks on an async one; (calls/s, CPU us per call)."""
    import asyncio
    import resource
    import threading
    import time

    import redis.asyncio

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    key = f"benchsync{uuid.uuid4().hex[:6]}:floor"
    each = n // concurrency
    sync_client = redis.Redis.from_url(url)
    sync_client.ping()

    def incr_many() -> None:
        for _ in range(each):
            sync_client.incr(key)

    threads = [threading.Thread(target=incr_many) for _ in range(concurrency)]
    c0, t0 = cpu(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    floor = {"threads": (each * concurrency / (time.perf_counter() - t0),
                         (cpu() - c0) * 1e6 / (each * concurrency))}

    async def tasks() -> tuple[float, float]:
        client = redis.asyncio.Redis.from_url(url)
        await client.ping()

        async def incr_many_async() -> None:
            for _ in range(each):
                await client.incr(key)

        c1, t1 = cpu(), time.perf_counter()
        await asyncio.gather(*(incr_many_async() for _ in range(concurrency)))
        done = (each * concurrency / (time.perf_counter() - t1),
                (cpu() - c1) * 1e6 / (each * concurrency))
        await client.aclose()
        return done

    floor["asyncio"] = asyncio.run(tasks())
    sync_client.delete(key)
    sync_client.close()
    return floor


def top_of_profile(raw: Path, count: int = 12) -> list[str]:
    """Functions by own and by inclusive samples, from py-spy's raw collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        n = int(samples)
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    lines = ["  own:"]
    lines += [f"    {100 * s / total:5.1f}%  {name}"
              for name, s in sorted(own.items(), key=lambda kv: -kv[1])[:count]]
    lines.append("  inclusive:")
    lines += [f"    {100 * s / total:5.1f}%  {name}"
              for name, s in sorted(inclusive.items(), key=lambda kv: -kv[1])[:count]]
    return lines


def report(args: argparse.Namespace) -> None:
    """Alternate async and sync runs (so both see the same neighbours) and print."""
    rates: dict[str, list[float]] = {"async": [], "sync": []}
    cpu_ms: dict[str, list[float]] = {"async": [], "sync": []}
    startup = {kind: drain(args.url, 0, args.concurrency, kind, None, args.cpu_affinity,
                           args.unpinned)[1]
               for kind in ("async", "sync")}
    for _ in range(args.runs):
        for kind in ("async", "sync"):
            rate, cpu = drain(args.url, args.n, args.concurrency, kind, args.profile,
                              args.cpu_affinity, args.unpinned)
            rates[kind].append(rate)
            cpu_ms[kind].append((cpu - startup[kind]) * 1000 / args.n)
    for kind, values in rates.items():
        shown = "  ".join(f"{v:8,.0f}" for v in values)
        print(f"drain {args.n:,} tasks, {kind:5s} handler, concurrency {args.concurrency}: "
              f"{shown} tasks/s")
    ratio = max(rates["sync"]) / max(rates["async"])
    print(f"sync / async (best of {args.runs}): {ratio:.0%}   (target >= 80%)")
    if args.profile is None:  # under py-spy the child is the profiler
        for kind, values in cpu_ms.items():
            shown = "  ".join(f"{v:6.3f}" for v in values)
            print(f"worker CPU per task, {kind:5s} handler: {shown} ms")
        cpu_ratio = min(cpu_ms["async"]) / min(cpu_ms["sync"])
        print(f"async / sync CPU per task (best of {args.runs}): {cpu_ratio:.0%}")
    floor = client_floor(args.url, args.n, args.concurrency)
    for kind, label in (("threads", "plain threads, sync client"),
                        ("asyncio", "asyncio tasks, async client")):
        rate, us = floor[kind]
        print(f"the INCR alone, no engine, {args.concurrency} {label}: {rate:8,.0f} /s, "
              f"{us:5.0f} us CPU per call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("REMQ_BENCH_REDIS_URL",
                                                        "redis://127.0.0.1:6379/14"))
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--profile", type=Path, help="py-spy each worker; raw stacks here")
    parser.add_argument("--cpu-affinity", type=int, metavar="CPU",
                        help="pin each worker process to this CPU")
    parser.add_argument("--unpinned", action="store_true",
                        help="workers' threads wherever the OS puts them (CPU_AFFINITY None)")
    parser.add_argument("--worker", choices=["sync", "async"], help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.url, args.prefix, args.concurrency, args.worker, args.cpu_affinity,
                   pin_threads=not args.unpinned)
        return
    if args.profile is not None:
        if not shutil.which("py-spy"):
            parser.error("--profile needs py-spy on PATH (pip install py-spy)")
        args.profile.mkdir(parents=True, exist_ok=True)
    pinned = ("   workers' threads unpinned" if args.unpinned else "" if args.cpu_affinity is None
              else f"   workers pinned to CPU {args.cpu_affinity}")
    print(f"Redis: {args.url}   python {sys.version.split()[0]}   cores: {os.cpu_count()}"
          f"{pinned}")
    report(args)
    if args.profile is not None:
        for raw in sorted(args.profile.glob("*.txt")):
            print(f"top of {raw.name} (GIL-holding samples):")
            print("\n".join(top_of_profile(raw)))


if __name__ == "__main__":
    main()
