"""What WAIT_REPLICAS=1 costs: emit/s and drain/s with and without it; prints figures.

    python bench/wait.py [--n 5000] [--concurrency 16] [--rounds 3] [--cluster]

Starts a private redis-server master and one replica (``--replicaof``) on free
loopback ports (``--cluster``: a local 3-master Redis Cluster, one replica each,
from tests/cluster.py; the queue lives on one master, whose WAIT goes on the
connection of its writes), then measures: ``emit`` one at a time, ``emit_many``
(chunks of 1,000: one WAIT per chunk) and the drain rate of N pre-queued no-op tasks
by an in-process burst worker (one WAIT per acknowledgement batch), each with
``wait_replicas`` 0 and 1. Both servers share this machine's cores, so the replica's
work competes with the client's: on separate hosts the cost is mostly one extra
network round trip per emit / per batch. Not a test: figures vary with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from _redis_server import free_port, server, wait_ready

from django_remq.core import TaskManager

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.cluster import LocalCluster


@contextmanager
def master_and_replica() -> Iterator[str]:
    """The master's URL, once its replica is online."""
    mport, rport = free_port(), free_port()
    workdir = tempfile.mkdtemp()
    procs = [server(mport, workdir)]
    try:
        master = redis.Redis(port=mport, decode_responses=True)
        deadline = time.monotonic() + 20
        wait_ready(master)
        procs.append(server(rport, workdir, "--replicaof", "127.0.0.1", str(mport),
                            "--dbfilename", "replica.rdb"))
        while master.info("replication").get("slave0", {}).get("state") != "online":
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not come online")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{mport}/0"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def servers(cluster: bool) -> Iterator[tuple[str, str]]:
    """The URL to use, and what it is."""
    if cluster:
        with LocalCluster() as local:
            yield local.url, f"local cluster: 3 masters + 1 replica each ({local.url})"
    else:
        with master_and_replica() as url:
            yield url, f"private master + 1 replica ({url})"


def manager(url: str, wait: int, concurrency: int = 1, cluster: bool = False) -> TaskManager:
    tm = TaskManager.init(db=url, prefix=f"bench{uuid.uuid4().hex[:6]}", wait_replicas=wait,
                          wait_timeout_ms=5000, concurrency=concurrency,
                          processor={"max_logs_per_task": 10}, cluster=cluster)

    async def noop(task, ctx):  # type: ignore[no-untyped-def]
        return None

    tm.register_handler(event="noop", handler=noop)
    return tm


def bench_emit(url: str, wait: int, n: int, cluster: bool) -> tuple[float, float]:
    tm = manager(url, wait, cluster=cluster)
    tm.emit("noop")  # connect, load scripts
    t0 = time.perf_counter()
    for i in range(n):
        tm.emit("noop", data={"i": i})
    one = n / (time.perf_counter() - t0)
    items = [{"event": "noop", "data": {"i": i}} for i in range(n * 4)]
    t0 = time.perf_counter()
    tm.emit_many(items)
    many = len(items) / (time.perf_counter() - t0)
    tm.conn.close()  # the private servers go, keys and all, at the end
    return one, many


def bench_drain(url: str, wait: int, n: int, concurrency: int, cluster: bool) -> float:
    tm = manager(url, wait, concurrency, cluster)
    tm.emit_many({"event": "noop", "data": {"i": i}} for i in range(n))
    t0 = time.perf_counter()
    asyncio.run(tm.run(burst=True))  # returns once every acknowledgement is written
    rate = n / (time.perf_counter() - t0)
    done = tm.conn.sync.zcard(tm.keys.queue("default").status("completed"))
    if done < min(n, 10_000):  # the retention cap keeps at most 10,000
        raise RuntimeError(f"only {done} of {n} tasks completed")
    tm.conn.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cluster", action="store_true",
                        help="on a local Redis Cluster (3 masters, one replica each)")
    args = parser.parse_args()
    best: dict[int, list[float]] = {0: [0.0] * 3, 1: [0.0] * 3}
    with servers(args.cluster) as (url, what):
        print(f"{what}; n={args.n}; best of {args.rounds} rounds, the two modes alternated "
              "(a shared host's speed drifts)")
        for _ in range(args.rounds):
            for wait in (0, 1):
                figures = (*bench_emit(url, wait, args.n, args.cluster),
                           bench_drain(url, wait, args.n, args.concurrency, args.cluster))
                best[wait] = [max(a, b) for a, b in zip(best[wait], figures, strict=True)]
    for wait, (one, many, drain) in best.items():
        print(f"WAIT_REPLICAS={wait}: emit {one:8,.0f}/s   emit_many {many:9,.0f}/s   "
              f"drain (concurrency {args.concurrency}) {drain:8,.0f} tasks/s")


if __name__ == "__main__":
    main()
