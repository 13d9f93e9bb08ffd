"""Throughput, latency and memory of the engine against a real Redis; prints figures.

    python bench/throughput.py [--url redis://127.0.0.1:6379/14] [--n 20000]
    python bench/throughput.py --only latency [--count 2000]   # pick-up latency alone
    python bench/throughput.py --only drain [--n 20000]        # drain rates alone
    python bench/throughput.py --only emit                     # emit against the floor

Measures: emit one at a time, against a bare LPUSH loop on a redis-py client
(the floor the peers are held to: a plain enqueue); emit_many; aemit one at a time
against the same loop on a redis-py asyncio client; drain rate of N pre-queued no-op
tasks (each INCRs a counter) by one worker process at concurrency 1 and a tuned one,
and at the tuned one with a handler that does no I/O (the engine's own CPU per task);
pick-up latency (emit -> handler start) with an idle worker, 500 tasks 5 ms apart, then
the same beside 60 long jobs the worker runs (with the Redis CPU that costs per task);
the worker's peak RSS; and redis-benchmark on the same server
as the ceiling. Not a test: figures vary with the machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis
from _python_cost import python_us
from _redis_server import delete_keys, redis_cpu

from django_remq.core import TaskManager

HERE = Path(__file__).resolve().parent
WORKER = [sys.executable, str(HERE / "_worker.py")]


def cleanup(r: redis.Redis, prefix: str) -> None:
    delete_keys(r, f"{prefix}:*")


def bench_emit(url: str, n: int, rounds: int = 3) -> tuple[float, float, float, float, float]:
    """Best of ``rounds`` (alternated, so both see the same neighbours): emit one at a
    time, and the floor the peers are held to -- a bare LPUSH loop on a redis-py client
    (what huey's and RQ's enqueue amount to); then emit_many. Also the Redis time of
    one emit.lua call and of one LPUSH in those loops (``INFO commandstats``; the
    server's counters are reset)."""
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    tm = TaskManager.init(db=url, prefix=prefix)
    tm.emit("noop", data={"i": -1})  # connect, load scripts
    plain = redis.Redis.from_url(url)
    floor_key = f"{prefix}:floor"
    plain.lpush(floor_key, -1)
    plain.config_resetstat()
    one = floor = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(n):
            plain.lpush(floor_key, i)
        floor = max(floor, n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for i in range(n):
            tm.emit("noop", data={"i": i})
        one = max(one, n / (time.perf_counter() - t0))
    stats = plain.info("commandstats")
    on_redis = [stats[f"cmdstat_{c}"]["usec_per_call"] for c in ("evalsha", "lpush")]
    items = [{"event": "noop", "data": {"i": i}} for i in range(n * 5)]
    t0 = time.perf_counter()
    tm.emit_many(items)
    many = len(items) / (time.perf_counter() - t0)
    cleanup(tm.conn.sync, prefix)
    plain.close()
    return one, floor, many, on_redis[0], on_redis[1]


def emit_python_us(url: str) -> float:
    """The Python one emit runs besides its I/O, in us (``_python_cost``)."""
    tm = TaskManager.init(db=url, prefix=f"bench{uuid.uuid4().hex[:6]}")
    us = python_us(tm, lambda: tm.emit("noop", data={"i": 1}))
    cleanup(tm.conn.sync, tm.keys.prefix)
    tm.conn.close()
    return us


def bench_aemit(url: str, n: int, rounds: int = 3) -> tuple[float, float]:
    """Best of ``rounds``, alternated: ``await tm.aemit`` one at a time (an async view, a
    handler's follow-up), and its floor, a bare LPUSH loop on a redis-py asyncio client."""
    import asyncio

    import redis.asyncio

    async def run() -> tuple[float, float]:
        prefix = f"bench{uuid.uuid4().hex[:6]}"
        tm = TaskManager.init(db=url, prefix=prefix)
        await tm.aemit("noop", data={"i": -1})  # connect, load scripts
        plain = redis.asyncio.Redis.from_url(url)
        one = floor = 0.0
        for _ in range(rounds):
            t0 = time.perf_counter()
            for i in range(n):
                await plain.lpush(f"{prefix}:floor", i)
            floor = max(floor, n / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for i in range(n):
                await tm.aemit("noop", data={"i": i})
            one = max(one, n / (time.perf_counter() - t0))
        cleanup(tm.conn.sync, prefix)
        await plain.aclose()
        await tm.conn.aclose()
        return one, floor

    return asyncio.run(run())


def start_worker(url: str, prefix: str, concurrency: int, burst: bool,
                 uvloop: bool, floor: bool = False) -> subprocess.Popen[str]:
    cmd = [*WORKER, "--url", url, "--prefix", prefix, "--concurrency", str(concurrency)]
    cmd += ["--burst"] * burst + ["--uvloop"] * uvloop + ["--floor"] * floor
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        raise RuntimeError(f"worker did not start: {line!r}")
    return proc


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_drain(url: str, n: int, concurrency: int, uvloop: bool, event: str = "noop"
                ) -> tuple[float, int, float, float]:
    """tasks/s, peak RSS (MB), and the worker's and Redis's CPU seconds over the run
    (the worker's start-up included: :func:`print_drains` subtracts an empty run's).
    ``event`` "bare": the handler does no I/O, so the CPU is the engine's alone."""
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    tm = TaskManager.init(db=url, prefix=prefix)
    if n:
        tm.emit_many({"event": event, "data": {"i": i}} for i in range(n))
    r = tm.conn.sync
    counter = f"{prefix}:counter"
    cpu0, redis0 = children_cpu(), redis_cpu(r)
    proc = start_worker(url, prefix, concurrency, burst=True, uvloop=uvloop)
    t0 = time.perf_counter()
    while int(r.get(counter) or 0) < n:  # type: ignore[arg-type]
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    out, _ = proc.communicate(timeout=60)
    cpu, rcpu = children_cpu() - cpu0, redis_cpu(r) - redis0
    done = int(r.get(counter) or 0)  # type: ignore[arg-type]
    if done < n:
        raise RuntimeError(f"worker stopped after {done}/{n} tasks")
    rss = int(out.split("RSS")[-1]) // 1024
    cleanup(r, prefix)
    return n / elapsed if n else 0.0, rss, cpu, rcpu


def bench_latency(url: str, count: int, uvloop: bool, floor: bool = False,
                  busy: int = 0) -> tuple[float, float, float]:
    """p50/p99 ms from a stamp taken just before the emit to the handler's start, with an
    idle worker; ``floor``: the same for a bare XADD read by a bare redis-py asyncio
    XREADGROUP loop (no engine), what any asyncio worker on this host pays. ``busy``: the
    worker runs that many long jobs meanwhile (concurrency ``busy`` + 4). Third: the Redis
    CPU per timed task, in us (INFO commandstats, every command of the timed part)."""
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    tm = TaskManager.init(db=url, prefix=prefix)
    r = tm.conn.sync
    proc = start_worker(url, prefix, busy + 1 if not busy else busy + 4, burst=False,
                        uvloop=uvloop, floor=floor)
    if busy:
        tm.emit_many({"event": "hold", "data": {"s": 3600}} for _ in range(busy))
        processing = tm.keys.queue("default").status("processing")
        while r.zcard(processing) < busy:
            time.sleep(0.01)
    time.sleep(0.3)
    r.config_resetstat()
    for _ in range(count):
        if floor:
            r.xadd(f"{prefix}:floor", {"t": repr(time.time())})
        else:
            tm.emit("stamp", data={"t": time.time()})
        time.sleep(0.005)
    while r.llen(f"{prefix}:latency") < count:
        time.sleep(0.01)
    used = sum(v["usec"] for v in r.info("commandstats").values())  # type: ignore[union-attr]
    if busy:
        proc.kill()  # its long jobs would hold a graceful stop for the shutdown timeout
    else:
        proc.terminate()
    proc.communicate(timeout=30)
    values = sorted(float(x) * 1000 for x in r.lrange(f"{prefix}:latency", 0, -1))
    cleanup(r, prefix)
    return statistics.median(values), values[int(len(values) * 0.99) - 1], used / count


def print_drains(url: str, n: int, concurrencies: tuple[int, ...], uvloop: bool) -> None:
    """Drain rates with the CPU each task cost the worker (start-up subtracted) and Redis
    (the whole server: run on a quiet one); when either nears a core, the rate flattens."""
    for conc in concurrencies:
        _, _, idle_cpu, idle_rcpu = bench_drain(url, 0, conc, uvloop)
        rate, rss, cpu, rcpu = bench_drain(url, n, conc, uvloop)
        print(f"drain {n:,} no-op tasks, concurrency {conc:3d}: {rate:10,.0f} tasks/s   "
              f"CPU per task: worker {(cpu - idle_cpu) * 1000 / n:.3f} ms, Redis "
              f"{(rcpu - idle_rcpu) * 1000 / n:.3f} ms   worker peak RSS {rss} MB")
    conc = concurrencies[-1]
    _, _, idle_cpu, idle_rcpu = bench_drain(url, 0, conc, uvloop)
    rate, _, cpu, rcpu = bench_drain(url, n, conc, uvloop, event="bare")
    print(f"  the engine alone (a handler with no I/O), concurrency {conc}: {rate:,.0f} "
          f"tasks/s   CPU per task: worker {(cpu - idle_cpu) * 1000 / n:.3f} ms, Redis "
          f"{(rcpu - idle_rcpu) * 1000 / n:.3f} ms (the rest above is the handler's INCR "
          f"through redis-py)")


#: long jobs a busy worker runs while the latency beside them is measured
BUSY = 60


def print_latency(url: str, count: int, uvloop: bool, rounds: int = 2) -> None:
    """Alternated rounds of the floor and the engine (both see the same neighbours)."""
    for _ in range(rounds):
        f50, f99, _ = bench_latency(url, count, uvloop, floor=True)
        p50, p99, idle_us = bench_latency(url, count, uvloop)
        print(f"pick-up latency (emit -> handler start), idle worker, {count} tasks: "
              f"p50 {p50:.2f} ms   p99 {p99:.2f} ms   (floor, bare XADD -> redis-py asyncio "
              f"XREADGROUP: p50 {f50:.2f} ms   p99 {f99:.2f} ms)")
    b50, b99, busy_us = bench_latency(url, count, uvloop, busy=BUSY)
    print(f"pick-up latency beside {BUSY} running jobs, {count} tasks: p50 {b50:.2f} ms   "
          f"p99 {b99:.2f} ms")
    print(f"Redis CPU per timed task (emit, pick-up, finish): idle worker {idle_us:,.0f} us, "
          f"beside {BUSY} running jobs {busy_us:,.0f} us")


def print_emit(url: str) -> None:
    raw = raw_round_trips(url)
    print(f"raw PING round trips (bare socket, one at a time): {raw:10,.0f} /s")
    one, floor, many, script_us, lpush_us = bench_emit(url, 10_000)
    print(f"LPUSH one at a time (redis-py, the floor): {floor:10,.0f} /s")
    print(f"emit one at a time:   {one:10,.0f} tasks/s   ({one / floor:.0%} of the LPUSH floor, "
          f"{one / raw:.0%} of raw round trips)")
    print(f"  of which Redis: emit.lua {script_us:.1f} us per call, LPUSH {lpush_us:.1f} us; "
          f"Python besides the I/O: {emit_python_us(url):.1f} us per emit")
    print(f"emit_many:            {many:10,.0f} tasks/s")
    aone, afloor = bench_aemit(url, 5_000)
    print(f"aemit one at a time:  {aone:10,.0f} tasks/s   ({aone / afloor:.0%} of an asyncio "
          f"LPUSH loop: {afloor:,.0f} /s)")


def raw_round_trips(url: str, n: int = 20_000) -> float:
    """PING over a bare socket, one at a time: the most one-at-a-time calls per second
    any Python client gets from this machine right now (shared hosts vary by 3x)."""
    u = redis.connection.parse_url(url)
    with socket.create_connection((u.get("host", "127.0.0.1"), u.get("port", 6379))) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter()
        for _ in range(n):
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            s.recv(64)
        return n / (time.perf_counter() - t0)


def redis_benchmark(url: str) -> str:
    if not shutil.which("redis-benchmark"):
        return "redis-benchmark not installed"
    u = redis.connection.parse_url(url)
    cmd = ["redis-benchmark", "-h", str(u.get("host", "127.0.0.1")), "-p", str(u.get("port", 6379)),
           "-q", "-n", "100000", "-t", "set,incr,lpush"]
    single = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    piped = subprocess.run([*cmd, "-P", "16"], capture_output=True, text=True, timeout=120).stdout
    def finals(out: str) -> list[str]:
        return ["      " + part.strip() for part in out.replace("\r", "\n").splitlines()
                if "requests per second" in part]

    return "\n".join(["    no pipelining:", *finals(single), "    pipeline 16:", *finals(piped)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("REMQ_BENCH_REDIS_URL",
                                                        "redis://127.0.0.1:6379/14"))
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--tuned", type=int, default=64, help="tuned concurrency")
    parser.add_argument("--uvloop", action="store_true", help="run the worker on uvloop")
    parser.add_argument("--only", choices=("latency", "drain", "emit"),
                        help="run one measurement alone")
    parser.add_argument("--count", type=int, default=500, help="tasks timed for the latency")
    args = parser.parse_args()
    print(f"Redis: {args.url}   python {sys.version.split()[0]}   cores: {os.cpu_count()}")
    if args.only == "latency":
        print_latency(args.url, args.count, args.uvloop)
        return
    if args.only == "drain":
        print_drains(args.url, args.n, (1, args.tuned), args.uvloop)
        return
    print_emit(args.url)
    if args.only == "emit":
        return
    print_drains(args.url, args.n, (1, args.tuned), args.uvloop)
    print_latency(args.url, args.count, args.uvloop)
    print("redis-benchmark (same server, the ceiling):")
    print(redis_benchmark(args.url))


if __name__ == "__main__":
    main()
