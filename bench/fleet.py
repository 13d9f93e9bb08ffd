"""A fleet on paper: how many workers, queues and tasks/s one Redis node, and an N-shard
cluster, carry -- computed from measurements taken here.

    python bench/fleet.py [--n 5000] [--budget 0.7] [--shards 3,6,12] [--quick]

Measures, each on a redis-server of its own:

1. what an idle worker costs Redis (commands/s and Redis CPU ms/s) serving 1, 10, 100
   and 1,000 queues (bench/idle.py's method, ``--idle-workers`` of them at once, per
   worker; ``--quick``: shorter windows), less the CPU the server spends with no client;
2. what a task costs Redis, emitted and drained (a burst worker, ``--concurrency 16``,
   no-op handler, the default settings): Redis CPU us and commands per task, with the
   tasks on one queue and spread over 100.

Then prints, for one node whose one core may be ``--budget`` busy (0.7: headroom for
bursts, persistence and replication), the idle workers it carries and the tasks/s left
beside W workers serving Q queues; and the same for clusters of N shards, queues spread
evenly (one queue lives on one shard: a single queue is one shard's figure). On a
cluster an idle worker blocks on each hash slot's streams (one read per slot a second;
docs/cluster.md), so its cost per shard is that of a worker serving the queues of that
shard alone, counted per queue: (queues / N) reads a second, each at the one-queue cost.
Not a test: the figures are this machine's; run it where your Redis runs.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import redis
from _redis_server import private_redis, redis_cpu
from idle import measure

from django_remq.core import TaskManager


def commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def baseline(seconds: float) -> float:
    """Redis CPU ms/s with no client: its own timers (subtracted from the idle figures)."""
    with private_redis() as url:
        client = redis.Redis.from_url(url)
        time.sleep(1.0)
        c0 = redis_cpu(client)
        time.sleep(seconds)
        used = (redis_cpu(client) - c0) * 1000 / seconds
        client.close()
    return used


def blocked_read(seconds: float, base_ms: float, readers: int = 200) -> float:
    """Redis CPU us of one blocking read on one empty stream that times out after a
    second: what an idle worker costs a cluster shard per hash slot a second (a read per
    slot). ``readers`` connections block at once, each on a stream of its own."""
    import redis.asyncio

    async def block_all(url: str) -> int:
        client = redis.asyncio.Redis.from_url(url, max_connections=readers + 1)
        for i in range(readers):
            await client.xgroup_create(f"s{i}", "g", id="0", mkstream=True)
        end = time.perf_counter() + seconds
        calls = 0

        async def reader(i: int) -> None:
            nonlocal calls
            while time.perf_counter() < end:
                await client.xreadgroup("g", "c", {f"s{i}": ">"}, count=1, block=1000)
                calls += 1

        await asyncio.gather(*(reader(i) for i in range(readers)))
        await client.aclose()
        return calls

    with private_redis() as url:
        client = redis.Redis.from_url(url)
        c0, t0 = redis_cpu(client), time.perf_counter()
        calls = asyncio.run(block_all(url))
        elapsed = time.perf_counter() - t0
        used = (redis_cpu(client) - c0) * 1000 - base_ms * elapsed  # ms, timers left out
        client.close()
    return max(used, 0.0) * 1000 / max(calls, 1)


def per_task(n: int, queues: int) -> tuple[float, float, float]:
    """(Redis CPU us per task, commands per task, tasks/s drained) for ``n`` no-op tasks
    over ``queues`` queues, emitted then drained by one burst worker."""
    names = [f"q{i}" for i in range(queues)]
    with private_redis() as url:
        client = redis.Redis.from_url(url)
        tm = TaskManager.init(db=url, prefix="fleet", concurrency=16)

        async def noop(task: object, ctx: object) -> None:
            return None

        for q in names:
            tm.register_handler(event="job", handler=noop, queue=q)
        cpu0, cmd0 = redis_cpu(client), commands(client)
        for start in range(0, n, 1000):
            tm.emit_many({"event": "job", "queue": names[i % queues], "data": i}
                         for i in range(start, min(n, start + 1000)))
        t0 = time.perf_counter()
        asyncio.run(tm.run(names, burst=True))
        rate = n / (time.perf_counter() - t0)
        cpu, cmds = redis_cpu(client) - cpu0, commands(client) - cmd0
        tm.conn.close()
        client.close()
    return cpu * 1e6 / n, cmds / n, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="tasks per per-task measurement")
    parser.add_argument("--budget", type=float, default=0.7,
                        help="share of a Redis node's one core to plan for")
    parser.add_argument("--shards", default="3,6,12")
    parser.add_argument("--quick", action="store_true", help="4 s windows instead of 10 s")
    parser.add_argument("--idle-workers", type=int, default=5,
                        help="idle workers measured at once (figures are per worker)")
    opts = parser.parse_args()
    window, warmup = (4.0, 4.0) if opts.quick else (10.0, 8.0)
    base = baseline(window)
    print(f"Redis with no client: {base:.2f} ms CPU/s (its timers; subtracted below)")
    idle: dict[int, tuple[float, float]] = {}
    for q in (1, 10, 100, 1000):  # several workers at once: a signal above the timers'
        cmds, _, cpu = measure(q, opts.idle_workers, 16, warmup, window)
        idle[q] = (cmds / opts.idle_workers, max(cpu - base, 0.0) / opts.idle_workers)
        print(f"idle worker, {q:5d} queues: {idle[q][0]:7.1f} commands/s, "
              f"{idle[q][1]:.2f} ms Redis CPU/s", flush=True)
    task: dict[int, tuple[float, float, float]] = {}
    for q in (1, 100):
        task[q] = per_task(opts.n, q)
        print(f"per task, {q:3d} queues: {task[q][0]:.1f} us Redis CPU, {task[q][1]:.1f} "
              f"commands (emit + run + finish; drained at {task[q][2]:.0f}/s by one worker)",
              flush=True)
    budget_ms = opts.budget * 1000.0  # Redis CPU ms per second to plan for
    us_task = task[100][0]  # the spread layout: the dearer of the two
    print(f"\nOne Redis node, {opts.budget:.0%} of its core: {budget_ms:.0f} ms CPU/s; a task "
          f"costs {us_task:.1f} us (spread over queues)")
    print("| workers | queues each serves | idle cost (% of the budget) | tasks/s left |")
    print("| ---: | ---: | ---: | ---: |")
    for workers in (10, 100, 1000):
        for q in (10, 100, 1000):
            spent = workers * idle[q][1]
            left = max(budget_ms - spent, 0.0) * 1000 / us_task
            print(f"| {workers:,} | {q:,} | {spent / budget_ms:.1%} | {left:,.0f} |")
    read_us = blocked_read(window, base)
    print(f"\nA cluster of N shards ({opts.budget:.0%} of each one's core); an idle worker "
          f"costs each shard one blocking read a second per hash slot of its queues there "
          f"({read_us:.1f} us each, measured)")
    print("| shards | workers | queues (spread) | idle cost per shard | tasks/s left, all "
          "shards | one queue's ceiling |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    ceiling = budget_ms * 1000 / task[1][0]
    for shards in (int(x) for x in opts.shards.split(",")):
        for workers, q in ((10, 100), (100, 100), (100, 1000), (1000, 1000)):
            per_shard = workers * min(q / shards, 16384 / shards) * read_us / 1000
            left = shards * max(budget_ms - per_shard, 0.0) * 1000 / us_task
            print(f"| {shards} | {workers:,} | {q:,} | {per_shard / budget_ms:.1%} | "
                  f"{left:,.0f} | {ceiling:,.0f} |")


if __name__ == "__main__":
    main()
