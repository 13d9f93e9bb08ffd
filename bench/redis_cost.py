"""What each task costs Redis: commands and CPU per task, per handler kind and concurrency.

    python bench/redis_cost.py [--n 20000] [--concurrency 1 8 32] [--kinds async sync]
        [--url redis://127.0.0.1:<port>/0]

Without ``--url`` a private ``redis-server`` is started on a free port (and stopped
after): the server's CPU figures are only the engine's when nothing else uses it. For
each variant, N tasks are queued (``emit_many``; that cost is printed apart, per task),
then the server's counters are reset and one worker process (``sync_handlers.py
--worker``: each task INCRs a counter from a ``def`` or an ``async def`` handler) drains
them. Printed per task: Redis commands (the handler's INCR excluded), Redis CPU (``INFO
cpu``, user + system, the whole drain incl. start-up and shutdown), and the commands'
own time (``INFO commandstats``), then the top commands by time. Then the handler's
floor: the Redis CPU of N INCRs sent as the async handler sends them (``concurrency``
asyncio tasks on one client) with no engine: the part of the figure that is the
handler's own round trip (what the peers' figures hold too). Not a test: figures
vary with the machine.

``--base DIR``: a checkout of an earlier version (``git archive <rev> | tar -x -C DIR``);
each variant then runs its worker on that version and on this one, in turn, ``--runs``
times (a shared host's load shifts: figures taken side by side compare, others less).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis
from _redis_server import delete_keys, private_redis, redis_cpu

HERE = Path(__file__).resolve().parent


#: commands the bench itself sends (the counter is polled with GETRANGE)
OURS = ("cmdstat_info", "cmdstat_config", "cmdstat_config|resetstat", "cmdstat_getrange")


def counts(r: redis.Redis) -> dict[str, tuple[int, int]]:
    """command -> (calls, usec) since the last CONFIG RESETSTAT (INFO's own calls aside)."""
    stats = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))  # type: ignore[index]
            for k, v in stats.items() if k not in OURS}


def drain(cmd: list[str], r: redis.Redis, counter: str, n: int,
          env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run the worker until the counter reaches n: (seconds from the first INCR, done,
    stderr). Polls with GETRANGE, a command the engine never sends (left out of the
    counts)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)

    def value() -> int:
        return int(r.getrange(counter, 0, -1) or 0)

    while not value() and proc.poll() is None:
        time.sleep(0.002)
    t0 = time.perf_counter()
    while value() < n and proc.poll() is None:
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    _, err = proc.communicate(timeout=120)
    return elapsed, value(), err


def run(url: str, n: int, concurrency: int, kind: str, base: Path | None = None
        ) -> dict[str, object]:
    from django_remq.core import TaskManager

    prefix = f"cost{uuid.uuid4().hex[:6]}"
    tm = TaskManager.init(db=url, prefix=prefix)
    r = tm.conn.sync
    r.config_resetstat()
    c0 = redis_cpu(r)
    tm.emit_many({"event": "noop", "data": {"i": i}} for i in range(n))
    emit_cpu, emit_calls = redis_cpu(r) - c0, counts(r)
    r.config_resetstat()
    c0 = redis_cpu(r)
    cmd = [sys.executable, str(HERE / "sync_handlers.py"), "--worker", kind, "--url", url,
           "--prefix", prefix, "--concurrency", str(concurrency)]
    env = None if base is None else {**os.environ, "PYTHONPATH": str(base)}
    elapsed, done, err = drain(cmd, r, f"{prefix}:counter", n, env)
    cpu, calls = redis_cpu(r) - c0, counts(r)
    if done < n:
        raise RuntimeError(f"{kind} worker stopped after {done}/{n} tasks:\n{err[-3000:]}")
    delete_keys(r, f"{prefix}:*")
    tm.conn.close()
    return {"rate": (n - 1) / elapsed, "cpu": cpu, "calls": calls, "emit_cpu": emit_cpu,
            "emit_calls": emit_calls}


def incr_floor(url: str, n: int, concurrency: int) -> float:
    """Redis CPU seconds of ``n`` INCRs from ``concurrency`` asyncio tasks on one client."""
    import asyncio

    import redis.asyncio

    async def go() -> float:
        client = redis.asyncio.Redis.from_url(url)
        await client.ping()
        key = f"cost{uuid.uuid4().hex[:6]}:floor"
        c0 = redis_cpu(redis.Redis.from_url(url))

        async def many() -> None:
            for _ in range(n // concurrency):
                await client.incr(key)

        await asyncio.gather(*(many() for _ in range(concurrency)))
        used = redis_cpu(redis.Redis.from_url(url)) - c0
        await client.delete(key)
        await client.aclose()
        return used

    return asyncio.run(go())


def report(url: str, n: int, concurrencies: list[int], kinds: list[str], top: int,
           base: Path | None, runs: int) -> None:
    versions: list[Path | None] = [base, None] if base else [None]
    for kind in kinds:
        for conc in concurrencies:
            for _ in range(runs):
                for version in versions:
                    if base:
                        print("base: " if version else "this: ", end="")
                    show(run(url, n, conc, kind, version), n, conc, kind, top)
    for conc in concurrencies:
        floor = incr_floor(url, n, conc)
        print(f"the handler's INCR alone (no engine), {conc:2d} asyncio tasks: Redis CPU "
              f"{floor * 1000 / n:.4f} ms per INCR")


def show(got: dict[str, object], n: int, conc: int, kind: str, top: int) -> None:
    """One variant's figures, per task."""
    calls: dict[str, tuple[int, int]] = got["calls"]  # type: ignore[assignment]
    total = sum(c for c, _ in calls.values()) - n  # the handler's INCRs aside
    usec = sum(u for _, u in calls.values())
    emit_calls: dict[str, tuple[int, int]] = got["emit_calls"]  # type: ignore[assignment]
    emitted = sum(c for c, _ in emit_calls.values())
    print(f"{kind:5s} handler, concurrency {conc:2d}: {got['rate']:8,.0f} tasks/s   "
          f"per task: {total / n:5.2f} commands, Redis CPU "
          f"{got['cpu'] * 1000 / n:.4f} ms (commands' own {usec / n / 1000:.4f} ms)   "
          f"emit_many: {emitted / n:.2f} commands, "
          f"{got['emit_cpu'] * 1000 / n:.4f} ms")  # type: ignore[operator]
    ranked = sorted(calls.items(), key=lambda kv: -kv[1][1])[:top]
    print("    " + ", ".join(f"{name} {c / n:.2f}/task {u / max(c, 1):.1f}us"
                             for name, (c, u) in ranked))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a Redis nothing else uses (default: start one)")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--kinds", nargs="+", choices=["async", "sync"],
                        default=["async", "sync"])
    parser.add_argument("--top", type=int, default=8, help="commands listed per variant")
    parser.add_argument("--base", type=Path, help="an earlier version's checkout, run in turn")
    parser.add_argument("--runs", type=int, default=1, help="runs per variant (and version)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(private_redis())
        print(f"Redis: {url}{'' if args.url else ' (private)'}   python "
              f"{sys.version.split()[0]}   cores: {os.cpu_count()}")
        report(url, args.n, args.concurrency, args.kinds, args.top, args.base, args.runs)


if __name__ == "__main__":
    main()
