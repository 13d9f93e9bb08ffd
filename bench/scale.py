"""How throughput grows with worker processes, on one Redis node or a Redis Cluster.

    python bench/scale.py [--url redis://127.0.0.1:6379/14] [--n 10000] [--workers 1,2,4,8]
        [--queues 1,8] [--concurrency 16] [--cluster] [--runs 1]

For each queue layout (all tasks on one queue; spread over 8 queues that every
worker serves) and each worker count: start the workers (real processes, like
``runworker_remq``), emit N tasks (each HINCRBYs its job id in a per-queue hash),
time until every job is completed or failed (the status indexes; count retention
is off), then stop the workers with SIGTERM. Prints tasks/s, the speed-up over one
worker, fairness (fewest/most tasks one worker ran), extra runs (a job's handler
run more than once, from the ids each worker wrote at exit; no worker crashes here,
so anything but 0 is a bug), missing and failed jobs, ``counter+`` (increments the
Redis counter got beyond one per job: a client applying a command twice), warnings
and errors the workers logged, and where the CPU went: Redis (INFO cpu deltas, every
node), the workers (psutil), this process (emitting, polling) and the whole machine,
in cores busy. When Redis or the machine's cores are saturated the curve flattens;
the CPU columns say which.

``--runs R`` measures every layout R times, alternating (so that each sees the same
neighbours), and ends with each layout against the first: the median tasks/s, and the
CPU per task of Redis and of the workers (steadier than the rate on a shared host).

``--cluster`` starts a local 3-master cluster (one replica each; tests/cluster.py)
and runs the same there. Not a test: figures vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
from _redis_server import delete_keys
from _redis_server import redis_cpu as node_cpu

from django_remq.core import TaskManager
from django_remq.core.store.keys import Keys

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from tests.cluster import LocalCluster  # noqa: E402

WORKER = [sys.executable, str(HERE / "_scale_worker.py")]


@dataclass
class Result:
    workers: int
    rate: float
    shares: list[int]
    extra_runs: int  # handler runs beyond one per job, from the workers' own lists
    missing: int  # jobs no worker ran (by the deadline)
    failed: int  # jobs whose handler raised (here: only a Redis error in its HINCRBY)
    counter_extra: int  # increments beyond one per job in Redis (client-side double applies)
    logged: Counter[str]  # warnings and errors the workers logged, by message start
    redis_cores: float
    worker_cores: float
    bench_cores: float
    machine_cores: float  # every process on the host, ours or not


def redis_cpu(nodes: list[redis.Redis]) -> float:
    total = 0.0
    for node in nodes:
        total += node_cpu(node)
    return total


def busy_cpu() -> float:
    """CPU seconds the whole machine spent not idle (all processes)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def done(client: Any, ended: list[str]) -> int:
    """Jobs ended so far: one round trip per poll (per node on a cluster), whatever the
    number of queues (one ZCARD each, pipelined)."""
    pipe = client.pipeline(transaction=False)
    for key in ended:
        pipe.zcard(key)
    return sum(pipe.execute())


def cleanup(client: Any, prefix: str) -> None:
    delete_keys(client, f"{prefix}:*", 1000)


def start_workers(url: str, prefix: str, queues: list[str], k: int, concurrency: int,
                  cluster: bool, log: Path) -> list[subprocess.Popen[str]]:
    cmd = [*WORKER, "--url", url, "--prefix", prefix, "--queues", ",".join(queues),
           "--concurrency", str(concurrency)] + ["--cluster"] * cluster
    procs = []
    for i in range(k):
        err = (log / f"worker{i}.log").open("w")
        procs.append(subprocess.Popen([*cmd, "--ran-file", str(log / f"worker{i}.ran")],
                                      stdout=subprocess.PIPE, stderr=err, text=True))
        err.close()
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"worker did not start ({line!r}); see {log}")
    return procs


def run_once(url: str, node_urls: list[str], cluster: bool, n: int, queues: list[str], k: int,
             concurrency: int, timeout: float) -> Result:
    prefix = f"scale{uuid.uuid4().hex[:6]}"
    tm = TaskManager.init(db=url, prefix=prefix, cluster=cluster)
    r = tm.conn.sync
    nodes = [redis.Redis.from_url(u) for u in node_urls]  # every Redis process
    me = psutil.Process()
    with tempfile.TemporaryDirectory(prefix="remq-scale-") as tmp:
        procs = start_workers(url, prefix, queues, k, concurrency, cluster, Path(tmp))
        ps = [psutil.Process(p.pid) for p in procs]
        cpu0 = [sum(p.cpu_times()[:2]) for p in ps]
        redis0, me0, host0 = redis_cpu(nodes), sum(me.cpu_times()[:2]), busy_cpu()
        t0 = time.perf_counter()
        tm.emit_many({"event": "job", "queue": queues[i % len(queues)], "data": i}
                     for i in range(n))
        runs = [f"{prefix}:{{{q}}}:runs" for q in queues]
        ended = [Keys(prefix).queue(q).status(st) for q in queues
                 for st in ("completed", "failed")]
        deadline = time.monotonic() + timeout
        while done(r, ended) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        worker_cpu = sum(sum(p.cpu_times()[:2]) for p in ps) - sum(cpu0)
        redis_used, me_used = redis_cpu(nodes) - redis0, sum(me.cpu_times()[:2]) - me0
        host_used = busy_cpu() - host0
        shares = []
        for proc in procs:
            proc.terminate()
            out, _ = proc.communicate(timeout=60)
            shares.append(int(out.split("RAN")[-1]) if "RAN" in out else -1)
        logged = Counter(line.split(";")[0][:110] for f in Path(tmp).glob("*.log")
                         for line in f.read_text().splitlines()
                         if line.startswith(("ERROR", "WARNING")))
        ran = Counter(i for f in Path(tmp).glob("*.ran") for i in f.read_text().split())
    counted = [int(v) for key in runs for v in r.hgetall(key).values()]
    failed = sum(r.zcard(Keys(prefix).queue(q).status("failed")) for q in queues)
    result = Result(k, len(ran) / elapsed, shares, sum(c - 1 for c in ran.values() if c > 1),
                    n - len(ran), failed, sum(counted) - len(counted), logged, redis_used / elapsed,
                    worker_cpu / elapsed, me_used / elapsed, host_used / elapsed)
    cleanup(r, prefix)
    tm.conn.close()
    for node in nodes:
        node.close()
    return result


def report(title: str, results: list[Result]) -> None:
    print(f"\n{title}")
    print("  workers  tasks/s  speed-up  per worker min/max  extra runs  missing  failed  "
          "counter+  logged  cores busy: redis / workers / bench / whole machine")
    base = results[0].rate
    logged: Counter[str] = Counter()
    for x in results:
        logged.update(x.logged)
        print(f"  {x.workers:7d}  {x.rate:7.0f}  {x.rate / base:7.2f}x  "
              f"{min(x.shares):8d} / {max(x.shares):<8d} {x.extra_runs:10d}  {x.missing:7d}  "
              f"{x.failed:6d}  "
              f"{x.counter_extra:8d}  {x.logged.total():6d}  {x.redis_cores:6.2f} / "
              f"{x.worker_cores:5.2f} / {x.bench_cores:4.2f} / {x.machine_cores:4.2f}")
    for message, count in logged.most_common(4):
        print(f"  logged {count}x: {message}")


def explain(results: list[Result]) -> None:
    cores = os.cpu_count() or 1
    best = max(results, key=lambda x: x.rate)
    ours = best.redis_cores + best.worker_cores + best.bench_cores
    print(f"  best: {best.rate:.0f} tasks/s with {best.workers} workers; there {ours:.2f} "
          f"cores were ours (Redis {best.redis_cores:.2f}, workers {best.worker_cores:.2f}, "
          f"bench {best.bench_cores:.2f}) and the whole machine used {best.machine_cores:.2f} "
          f"of {cores}.")
    if best.machine_cores > 0.85 * cores:
        print("  the machine's cores are the limit (other processes included): more workers "
              "only share them.")
    elif best.redis_cores > 0.8:
        print("  Redis (one thread per node) is near one full core: add nodes (a cluster).")


@contextmanager
def target(opts: argparse.Namespace) -> Iterator[tuple[str, list[str]]]:
    if not opts.cluster:
        yield opts.url, [opts.url]
        return
    with LocalCluster() as cluster:
        print(f"local cluster: 3 masters + 3 replicas at {', '.join(cluster.urls)}")
        yield cluster.url, cluster.urls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("REMQ_BENCH_REDIS_URL",
                                                        "redis://127.0.0.1:6379/14"))
    parser.add_argument("--n", type=int, default=10_000, help="tasks per measurement")
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--queues", default="1,8", help="queue layouts (number of queues)")
    parser.add_argument("--concurrency", type=int, default=16, help="per worker process")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--cluster", action="store_true",
                        help="start a local 3-master Redis Cluster and run there")
    parser.add_argument("--runs", type=int, default=1,
                        help="measure each layout this many times, alternating, and compare")
    opts = parser.parse_args()
    counts = [int(x) for x in opts.workers.split(",")]
    layouts = [int(x) for x in opts.queues.split(",")]
    print(f"{opts.n} tasks per run, concurrency {opts.concurrency} per worker, "
          f"{os.cpu_count()} cores, {'cluster' if opts.cluster else 'one node'}")
    every: dict[tuple[int, int], list[Result]] = {}
    with target(opts) as (url, node_urls):
        for _ in range(opts.runs):
            for nq in layouts:
                queues = [f"q{i}" for i in range(nq)]
                results = [run_once(url, node_urls, opts.cluster, opts.n, queues, k,
                                    opts.concurrency, opts.timeout) for k in counts]
                report(f"{nq} queue{'s' * (nq > 1)}, every worker serves "
                       f"{'it' if nq == 1 else 'all'}:", results)
                explain(results)
                for x in results:
                    every.setdefault((nq, x.workers), []).append(x)
    if opts.runs > 1:
        compare(every, layouts, counts)


def compare(every: dict[tuple[int, int], list[Result]], layouts: list[int],
            counts: list[int]) -> None:
    """Each layout against the first: medians over the runs."""
    def per_task(xs: list[Result], cores: Callable[[Result], float]) -> float:
        return statistics.median(cores(x) / x.rate * 1000 for x in xs)

    print(f"\nmedians of {len(every[layouts[0], counts[0]])} runs, against {layouts[0]} "
          f"queue{'s' * (layouts[0] > 1)}:")
    print("  queues  workers  tasks/s  ratio  Redis CPU ms/task  ratio  "
          "workers' CPU ms/task  ratio")
    for k in counts:
        base = every[layouts[0], k]
        for nq in layouts:
            xs = every[nq, k]
            rate = statistics.median(x.rate for x in xs)
            redis_ms = per_task(xs, lambda x: x.redis_cores)
            worker_ms = per_task(xs, lambda x: x.worker_cores)
            print(f"  {nq:6d}  {k:7d}  {rate:7.0f}  "
                  f"{rate / statistics.median(x.rate for x in base):5.2f}  "
                  f"{redis_ms:17.3f}  {redis_ms / per_task(base, lambda x: x.redis_cores):5.2f}  "
                  f"{worker_ms:20.3f}  "
                  f"{worker_ms / per_task(base, lambda x: x.worker_cores):5.2f}")


if __name__ == "__main__":
    main()
