"""What the worker's two hot scripts cost Redis, per call and per job, by batch size.

    python bench/scripts.py [--n 6000] [--batch 1 8 32] [--runs 2] [--url URL] [--floor]

Without ``--url`` a private ``redis-server`` is started on a free port. For each batch
size B, N jobs are queued (``emit_many``), then delivered B at a time (``deliver.lua``,
"fetch" mode, as the worker's fetch under load) and finished B at a time
(``finish.lua``, all completed, as the acker's batch). Each phase is measured on its
own: the server's counters are reset before it, and printed after it are, per job, the
Redis CPU (``INFO cpu``, user + system: the round trips' kernel work in it), the
script's time (``INFO commandstats``: the ``EVALSHA`` time, its commands' in it) and the
commands its script ran. No worker, no handler: what each script costs where it runs,
with nothing else on the wire, so a change to a script shows in these figures alone.

``--floor`` also runs each phase as the same writes sent as plain commands, pipelined,
no Lua (not atomic: a measure, not a way to run jobs): the deliver phase reads (one
``XREADGROUP``), then one pipeline per batch of an ``HMGET`` of the run fields and an
``HSET`` per job and the index moves; the finish phase an ``XACK``, an ``HMGET``, an
``HSET`` and a ``PEXPIRE`` per job, the batch's ``XDEL`` and index moves, the counters
and the retention checks. What the record, the status indexes and the counters cost
Redis whatever runs them: the floor under the scripts' figures. Not a test: figures vary
with the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from _redis_server import delete_keys, private_redis, redis_cpu

from django_remq.core.store import calls
from django_remq.core.store.calls import Delivery
from django_remq.core.store.keys import QueueKeys
from django_remq.core.store.scripts import run_many


def phase(r: redis.Redis, work: Callable[[], None]) -> tuple[float, float, int]:
    """(Redis CPU s, EVALSHA usec, commands run by scripts) of ``work()``."""
    r.config_resetstat()
    c0 = redis_cpu(r)
    work()
    cpu = redis_cpu(r) - c0
    stats: dict[str, Any] = r.info("commandstats")  # type: ignore[assignment]
    ours = {"cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config"}
    evalsha = stats.get("cmdstat_evalsha", {"usec": 0, "calls": 0})
    inner = sum(int(v["calls"]) for k, v in stats.items()
                if k not in ours and k != "cmdstat_evalsha")
    return cpu, float(evalsha["usec"]), inner


def run(url: str, n: int, batch: int, floor: bool = False
        ) -> dict[str, tuple[float, float, float]]:
    from django_remq.core import TaskManager

    prefix = f"scr{uuid.uuid4().hex[:6]}"
    tm = TaskManager.init(db=url, prefix=prefix)
    r = tm.conn.sync
    tm.emit_many({"event": "noop", "data": {"i": i}} for i in range(n))
    qk = tm.keys.queue("default")
    r.xgroup_create(qk.stream, "remq", id="0", mkstream=True)
    delivered: list[Delivery] = []
    deliver, finish = (deliver_plain, finish_plain) if floor else (deliver_lua, finish_lua)
    reader = r if floor else tm.conn.raw_sync  # the worker's deliver calls do not decode
    out = {}
    for name, work in (("deliver", lambda: deliver(reader, qk, n, batch, delivered)),
                       ("finish", lambda: finish(r, qk, batch, delivered))):
        cpu, usec, inner = phase(r, work)
        jobs = len(delivered)
        out[name] = (cpu / jobs * 1e6, usec / jobs, inner / jobs)
    if len(delivered) != n:
        raise RuntimeError(f"delivered {len(delivered)} of {n} jobs")
    delete_keys(r, f"{prefix}:*")
    tm.conn.close()
    return out


def deliver_lua(r: redis.Redis, qk: QueueKeys, n: int, batch: int,
                delivered: list[Delivery]) -> None:
    """deliver.lua in "fetch" mode, ``batch`` at a time."""
    while len(delivered) < n:
        call = calls.fetch(qk, "bench", batch, lock_ms=30_000, max_deliveries=5)
        got = run_many(r, [call])[0]
        if not got:
            break
        delivered.extend(got)


def finish_lua(r: redis.Redis, qk: QueueKeys, batch: int, delivered: list[Delivery]) -> None:
    """finish.lua on ``batch`` completed jobs at a time, as the acker's batch."""
    retention = calls.Retention()
    for i in range(0, len(delivered), batch):
        outcomes = [calls.Outcome(d.entry_id, d.job_id, "completed", {"result": "null"})
                    for d in delivered[i:i + batch]]
        run_many(r, [calls.finish(qk, outcomes, retention)])


RUN_READ = ["status", "worker", "deliveries", "entry", "name", "data", "options",
            "retried_attempts", "retry_count", "timestamp", "deliveries"]


def deliver_plain(r: redis.Redis, qk: QueueKeys, n: int, batch: int,
                  delivered: list[Delivery]) -> None:
    """deliver.lua's writes for a fetch of ``batch``, as plain commands."""
    stream, waiting, processing = qk.stream, qk.status("waiting"), qk.status("processing")
    while len(delivered) < n:
        now = int(time.time() * 1000)
        got: Any = r.xreadgroup("remq", "bench", {stream: ">"}, count=batch)
        if not got:
            break
        entries = got[0][1]
        pipe = r.pipeline(transaction=False)
        ids = []
        for eid, fields in entries:
            jid = fields["id"]
            ids.append(jid)
            key = qk.job(jid)
            pipe.hmget(key, RUN_READ)
            pipe.hset(key, mapping={"status": "processing", "last_run": now,
                                    "lock_until": now + 30_000, "worker": "bench",
                                    "deliveries": 1})
            delivered.append(Delivery(eid, jid, "run", {}))
        pipe.zrem(waiting, *ids)
        pipe.zadd(processing, {jid: now for jid in ids})
        pipe.execute()


def finish_plain(r: redis.Redis, qk: QueueKeys, batch: int,
                 delivered: list[Delivery]) -> None:
    """finish.lua's writes for batches of completed jobs, as plain commands."""
    stream = qk.stream
    processing, completed = qk.status("processing"), qk.status("completed")
    for i in range(0, len(delivered), batch):
        now = int(time.time() * 1000)
        part = delivered[i:i + batch]
        pipe = r.pipeline(transaction=False)
        for d in part:
            key = qk.job(d.job_id)
            pipe.xack(stream, "remq", d.entry_id)
            pipe.hmget(key, ["status", "last_run", "logged", "debounced"])
            pipe.hset(key, mapping={"result": "null", "status": "completed",
                                    "finished_at": now, "lock_until": 0})
            pipe.pexpire(key, 86_400_000)
        pipe.xdel(stream, *(d.entry_id for d in part))
        pipe.zrem(processing, *(d.job_id for d in part))
        pipe.zadd(completed, {d.job_id: now for d in part})
        hour = now // 3_600_000
        for field in ("completed", "run_ms", "h1"):
            pipe.hincrby(qk.totals, field, len(part))
            pipe.hincrby(qk.trend(hour), f"{now // 60000 % 60}:{field}", len(part))
        pipe.pexpireat(qk.trend(hour), (hour + 25) * 3_600_000)
        pipe.zremrangebyscore(completed, "-inf", now - 86_400_000)
        pipe.zcard(completed)
        pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a Redis nothing else uses (default: start one)")
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--runs", type=int, default=2, help="runs per batch size (median)")
    parser.add_argument("--floor", action="store_true",
                        help="also the same writes as plain pipelined commands")
    args = parser.parse_args()

    def report(url: str) -> None:
        print(f"Redis: {url}   N = {args.n} jobs per run, median of {args.runs} runs")
        for batch in args.batch:
            for floor in (False, True) if args.floor else (False,):
                runs = [run(url, args.n, batch, floor) for _ in range(args.runs)]
                for name in ("deliver", "finish"):
                    cpu, usec, inner = (statistics.median(r[name][i] for r in runs)
                                        for i in range(3))
                    if floor:
                        print(f"batch {batch:3}  {name:8} plain commands, per job: Redis CPU "
                              f"{cpu:6.1f} us, {inner:5.2f} commands")
                        continue
                    print(f"batch {batch:3}  {name:8} per job: Redis CPU {cpu:6.1f} us, "
                          f"script {usec:6.1f} us, {inner:5.2f} commands   "
                          f"per call: script {usec * batch:7.1f} us")

    if args.url:
        report(args.url)
    else:
        with private_redis() as url:
            report(url)


if __name__ == "__main__":
    main()
