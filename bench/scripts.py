"""What the worker's two hot scripts cost Redis, per call and per job, by batch size.

    python bench/scripts.py [--n 6000] [--batch 1 8 32] [--runs 2] [--url URL] [--floor]
        [--base DIR]

Without ``--url`` a private ``redis-server`` is started on a free port. For each batch
size B, N jobs are queued (``emit_many``), then delivered B at a time (``deliver.lua``,
"fetch" mode, as the worker's fetch under load) and finished B at a time
(``finish.lua``, all completed, as the acker's batch). Each phase is measured on its
own: the server's counters are reset before it, and printed after it are, per job, the
Redis CPU (``INFO cpu``, user + system: the round trips' kernel work in it), the
script's time (``INFO commandstats``: the ``EVALSHA`` time, its commands' in it) and the
commands its script ran. No worker, no handler: what each script costs where it runs,
with nothing else on the wire, so a change to a script shows in these figures alone.

``--base DIR``: a checkout of an earlier version (``git archive <rev> | tar -x -C DIR``)
whose scripts run in turn with this one's, ``--runs`` times each: on a shared host only
figures taken side by side compare.

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
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from _redis_server import delete_keys, private_redis, redis_cpu

from django_remq.core.store import calls
from django_remq.core.store.calls import Delivery
from django_remq.core.store.keys import QueueKeys
from django_remq.core.store.scripts import run_many

#: per phase ("deliver", "finish"): Redis CPU us, script us, commands, per job
Result = dict[str, tuple[float, float, float]]


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
        ) -> Result:
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


#: what deliver.lua's HMGET reads: its checks' fields, then what a run needs
RUN_READ = ["status", "worker", "deliveries", "entry", *calls.RUN_FIELDS]


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


def run_version(base: Path | None, url: str, n: int, batch: int
                ) -> Result:
    """:func:`run` in this checkout, or (``base``) in a process on that checkout's code."""
    if base is None:
        return run(url, n, batch)
    out = subprocess.run([sys.executable, __file__, "--one", url, str(n), str(batch)],
                         env={**os.environ, "PYTHONPATH": str(base)}, check=True,
                         capture_output=True, text=True).stdout
    return {k: tuple(v) for k, v in json.loads(out).items()}  # type: ignore[misc]


def show(label: str, batch: int, runs: list[Result], floor: bool) -> None:
    """One version's figures at one batch size (medians of its runs)."""
    for name in ("deliver", "finish"):
        cpu, usec, inner = (statistics.median(r[name][i] for r in runs) for i in range(3))
        if floor:
            print(f"batch {batch:3}  {name:8} plain commands, per job: Redis CPU "
                  f"{cpu:6.1f} us, {inner:5.2f} commands")
            continue
        print(f"{label}batch {batch:3}  {name:8} per job: Redis CPU {cpu:6.1f} us, "
              f"script {usec:6.1f} us, {inner:5.2f} commands   "
              f"per call: script {usec * batch:7.1f} us")


def report(url: str, args: argparse.Namespace, versions: list[tuple[str, Path | None]]
           ) -> None:
    print(f"Redis: {url}   N = {args.n} jobs per run, median of {args.runs} runs")
    for batch in args.batch:
        got: dict[str, list[Result]] = {}
        for _ in range(args.runs):  # versions in turn: a shared host's load shifts
            for label, path in versions:
                got.setdefault(label, []).append(run_version(path, url, args.n, batch))
        for label, _ in versions:
            show(label, batch, got[label], False)
        if args.floor:
            show("", batch, [run(url, args.n, batch, True) for _ in range(args.runs)], True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a Redis nothing else uses (default: start one)")
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--runs", type=int, default=2, help="runs per batch size (median)")
    parser.add_argument("--floor", action="store_true",
                        help="also the same writes as plain pipelined commands")
    parser.add_argument("--base", type=Path,
                        help="an earlier version's checkout, run in turn with this one")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # url n batch: JSON out
    args = parser.parse_args()
    if args.one:
        url, n, batch = args.one
        print(json.dumps(run(url, int(n), int(batch))))
        return
    versions: list[tuple[str, Path | None]] = [("", None)]
    if args.base:
        versions = [("base ", args.base.resolve()), ("this ", None)]

    if args.url:
        report(args.url, args, versions)
    else:
        with private_redis() as url:
            report(url, args, versions)


if __name__ == "__main__":
    main()
