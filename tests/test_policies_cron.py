"""Cron repeat: one run per tick across workers, no stampede after downtime."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from django_remq.core import InvalidOptions, TaskManager

from .cluster import on_both
from .policy_helpers import run_until, spawn_worker, wait_all
from .records import record

pytestmark = pytest.mark.processes


def test_invalid_pattern_is_rejected_at_registration(make_tm):
    tm: TaskManager = make_tm()
    with pytest.raises(InvalidOptions, match=r"'\*/5 \* \* \*'.*4 fields"):
        tm.register_handler("e", lambda t, c: None, options={"repeat": {"pattern": "*/5 * * *"}})
    with pytest.raises(InvalidOptions, match="out of range"):
        tm.register_handler("e", lambda t, c: None, options={"repeat": {"pattern": "0 25 * * *"}})


@on_both()
async def test_cron_runs_once_per_tick_with_three_worker_processes(redis_url, r, prefix):
    procs = [spawn_worker(redis_url, prefix, "cron", 6) for _ in range(3)]
    wait_all(procs)
    runs = r.lrange(f"{prefix}:test:runs", 0, -1)
    ticks = sorted(int(line.split()[1]) for line in runs)
    assert len(ticks) == len(set(ticks)), "a tick ran twice"
    assert all(t % 1000 == 0 for t in ticks)
    assert len(ticks) >= 3, runs
    # measured against the seconds the workers actually ticked (start-up time varies):
    # three workers on a 1-second schedule make about one run per second, not three
    seconds = (ticks[-1] - ticks[0]) // 1000 + 1
    assert len(ticks) >= seconds * 0.6, f"ticks were skipped: {runs}"


@on_both()
async def test_one_run_not_a_stampede_after_downtime(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    runs: list[object] = []

    async def handler(task, ctx):
        runs.append(record(r, prefix, task.id))

    tm.register_handler("nightly", handler, options={"repeat": {"pattern": "0 3 * * *"}})
    hour_ago = int(time.time() * 1000) - 3_600_000
    r.zadd(f"{prefix}:{{default}}:cron", {"nightly": hour_ago})  # workers were down
    await run_until(tm, lambda: len(runs) >= 1, settle=1.0)
    assert len(runs) == 1
    rec = runs[0]
    assert rec.delay_until == hour_ago  # the missed tick
    assert rec.next_run > time.time() * 1000  # the next tick, in the future
    assert rec.repeat_count == 1
    assert rec.repeat_delay_ms == rec.next_run - hour_ago
    assert r.zscore(f"{prefix}:{{default}}:cron", "nightly") == rec.next_run


async def test_every_second_after_downtime_resumes_the_schedule(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    runs: list[int] = []

    async def handler(task, ctx):
        runs.append(record(r, prefix, task.id).delay_until)

    tm.register_handler("tick", handler, options={"repeat": {"pattern": "* * * * * *"}})
    r.zadd(f"{prefix}:{{default}}:cron", {"tick": int(time.time() * 1000) - 3_600_000})
    start = time.monotonic()
    await run_until(tm, lambda: time.monotonic() - start > 2.2)
    assert 2 <= len(runs) <= 4, runs  # one for the hour missed, then one per second


async def test_first_start_schedules_without_running_at_once(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    runs: list[int] = []
    tm.register_handler("e", lambda t, c: runs.append(1),
                        options={"repeat": {"pattern": "0 0 1 1 *"}})
    await run_until(tm, lambda: r.zscore(f"{prefix}:{{default}}:cron", "e") is not None,
                    settle=0.3)
    assert runs == []


async def test_limit_stops_the_schedule(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    runs: list[int] = []
    tm.register_handler("e", lambda t, c: runs.append(1),
                        options={"repeat": {"every_ms": 100, "limit": 3}})
    await run_until(tm, lambda: len(runs) >= 3, settle=0.5)
    assert len(runs) == 3
    assert r.zscore(f"{prefix}:{{default}}:cron", "e") is None


async def test_ticks_follow_the_configured_timezone(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={"timezone": "Asia/Kolkata"})  # UTC+05:30, no DST
    tm.register_handler("e", lambda t, c: None, options={"repeat": {"pattern": "0 3 * * *"}})
    await run_until(tm, lambda: r.zscore(f"{prefix}:{{default}}:cron", "e") is not None)
    tick = datetime.fromtimestamp(r.zscore(f"{prefix}:{{default}}:cron", "e") / 1000, UTC)
    assert (tick.hour, tick.minute) == (21, 30)  # 03:00 in Kolkata, not 03:00 UTC
