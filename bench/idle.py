"""What an idle worker costs Redis: commands per second by the number of queues it serves.

    python bench/idle.py [--queues 1,10,100,1000] [--concurrency 16] [--warmup 8]
        [--seconds 10] [--workers 1]

For each queue count: start a redis-server of its own (nothing else talks to it), start
``--workers`` real worker processes (``bench/_scale_worker.py``: a TaskManager serving
every queue, as ``runworker_remq`` does), emit nothing, wait ``--warmup`` seconds, then
count the commands Redis ran over ``--seconds`` (``INFO commandstats``: commands a Lua
script calls count too) and print commands/s, the busiest commands and Redis CPU.
``--json`` prints the figures as one JSON line too (bench/fleet.py reads it). Not a
test: tests/test_idle_cost.py asserts a bound on fewer queues.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from _redis_server import private_redis, redis_cpu

HERE = Path(__file__).resolve().parent
WORKER = [sys.executable, str(HERE / "_scale_worker.py")]


def counts(client: redis.Redis) -> tuple[dict[str, int], float]:
    """Calls per command so far, and Redis CPU seconds."""
    stats = client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    return calls, redis_cpu(client)


def measure(queues: int, workers: int, concurrency: int, warmup: float, seconds: float
            ) -> tuple[float, dict[str, float], float]:
    """Commands/s of ``workers`` idle workers serving ``queues`` queues, per command, and
    Redis CPU (ms per s)."""
    names = ",".join(f"q{i}" for i in range(queues))
    with private_redis() as url, tempfile.TemporaryDirectory(prefix="remq-idle-") as tmp:
        procs = []
        for i in range(workers):
            err = (Path(tmp) / f"w{i}.log").open("w")
            procs.append(subprocess.Popen(
                [*WORKER, "--url", url, "--prefix", "idle", "--queues", names,
                 "--concurrency", str(concurrency), "--ran-file", f"{tmp}/w{i}.ran"],
                stdout=subprocess.PIPE, stderr=err, text=True))
            err.close()
        try:
            for proc in procs:
                assert proc.stdout is not None
                line = proc.stdout.readline()
                if not line.startswith("READY"):
                    raise RuntimeError(f"worker did not start: {line!r}; see {tmp}")
            time.sleep(warmup)
            client = redis.Redis.from_url(url)
            before, cpu0 = counts(client)
            time.sleep(seconds)
            after, cpu1 = counts(client)
            client.close()
        finally:
            for proc in procs:
                proc.terminate()
                proc.communicate(timeout=60)
    per = {name: (n - before.get(name, 0)) / seconds for name, n in after.items()}
    per = {k: v for k, v in per.items() if v > 0 and k not in ("info",)}
    return sum(per.values()), per, (cpu1 - cpu0) * 1000 / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", default="1,10,100,1000")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    opts = parser.parse_args()
    print(f"idle workers: {opts.workers}, --concurrency {opts.concurrency}; commands counted "
          f"over {opts.seconds:.0f} s after {opts.warmup:.0f} s (INFO commandstats, "
          "the INFO calls left out)")
    print("  queues  commands/s  Redis CPU ms/s  busiest commands (/s)")
    figures = {}
    for n in (int(x) for x in opts.queues.split(",")):
        total, per, cpu = measure(n, opts.workers, opts.concurrency, opts.warmup, opts.seconds)
        top = ", ".join(f"{k} {v:.1f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])[:5])
        print(f"  {n:6d}  {total:10.1f}  {cpu:14.2f}  {top}", flush=True)
        figures[n] = {"commands_per_s": total, "redis_cpu_ms_per_s": cpu}
    if opts.json:
        print(json.dumps({"workers": opts.workers, "per_queues": figures}))


if __name__ == "__main__":
    main()
