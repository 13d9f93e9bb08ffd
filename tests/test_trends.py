"""finish.lua's counters (per-minute trend, monotonic totals, run-time histogram) and the
Sdk reads behind the pages' durations and charts (core/sdk/metrics.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from django_remq.core import InvalidOptions, TaskManager
from django_remq.core.sdk import Sdk
from django_remq.core.sdk.metrics import (
    RUN_BOUNDS_MS,
    TREND_HOURS,
    RunTimes,
    aqueue_metrics,
    duration_label,
    queue_metrics,
)
from django_remq.core.store.keys import Keys

from .policy_helpers import run_until

pytestmark = pytest.mark.redis


async def test_finish_counts_outcomes_and_run_times(make_tm, redis_url, r, prefix):
    tm: TaskManager = make_tm()
    done: list[str] = []
    failed_runs: list[str] = []

    async def ok(task, ctx):
        await asyncio.sleep(0.06)
        done.append(task.id)

    async def bad(task, ctx):
        failed_runs.append(task.id)
        raise RuntimeError("boom")

    tm.register_handler("ok", ok, queue="mail")
    tm.register_handler("bad", bad, queue="mail", options={"attempts": 2, "retry_delay_ms": 0})
    for i in range(3):
        tm.emit("ok", queue="mail", data={"i": i})
    tm.emit("bad", queue="mail")
    sdk = Sdk(redis_url, prefix=prefix)
    await run_until(tm, lambda: sdk.get_queue_stats("mail").completed == 3
                    and sdk.get_queue_stats("mail").failed == 1)
    [m] = queue_metrics(sdk, ["mail"], minutes=5, with_totals=True)
    assert len(m.completed) == len(m.failed) == 5
    # the current minute, or the one before if the run straddled a minute's end
    assert sum(m.completed) == 3
    assert sum(m.failed) == 1
    assert m.totals is not None
    t = m.totals
    assert len(failed_runs) >= 2
    assert (t.completed, t.failed, t.cancelled, t.retried) == (3, 1, 0, len(failed_runs) - 1)
    # every run is timed: 3 ok (>= 60 ms each) and each attempt of bad
    assert t.run_times.runs == 3 + len(failed_runs) == m.last_hour.runs
    slow = sum(n for bound, n in zip(RUN_BOUNDS_MS, t.run_times.buckets, strict=False)
               if bound > 50)
    assert slow == 3
    assert t.run_times.total_ms >= 180
    assert m.last_hour.average_ms is not None
    assert m.last_hour.average_ms >= 180 / (3 + len(failed_runs))
    p95 = m.last_hour.quantile_ms(0.95)
    assert p95 is not None
    assert 50 <= p95 <= 1000  # the slow runs, loose for a loaded host
    assert m.oldest_waiting_ms is None  # nothing waits
    [again] = await aqueue_metrics(sdk, minutes=5)  # every queue, async twin
    assert again.queue == "mail"
    assert again.totals is None
    assert sum(again.completed) == 3


async def test_trend_keys_are_bounded_and_expire(make_tm, redis_url, r, prefix):
    tm: TaskManager = make_tm()

    async def ok(task, ctx):
        return None

    tm.register_handler("ok", ok)
    tm.emit_many({"event": "ok", "data": {"i": i}} for i in range(20))
    sdk = Sdk(redis_url, prefix=prefix)
    await run_until(tm, lambda: sdk.get_queue_stats("default").completed == 20)
    qk = Keys(prefix).queue("default")
    trends = list(r.scan_iter(f"{qk.base}:trend:*"))
    assert 1 <= len(trends) <= 2
    for key in trends:
        hour = int(key.rsplit(":", 1)[1])
        # expires TREND_HOURS after its hour ends, not later
        assert r.pexpiretime(key) == (hour + 1 + TREND_HOURS) * 3_600_000
    assert r.ttl(qk.totals) == -1  # the totals never expire: Prometheus counters
    assert int(r.hget(qk.totals, "completed")) == 20


def test_oldest_waiting_and_empty_queue(make_tm, redis_url, prefix):
    tm: TaskManager = make_tm()
    before = int(time.time() * 1000)
    tm.emit("x", queue="slow")
    tm.emit("x", queue="slow")
    sdk = Sdk(redis_url, prefix=prefix)
    [m] = queue_metrics(sdk, ["slow"], minutes=60)
    assert m.oldest_waiting_ms is not None
    assert before - 5 <= m.oldest_waiting_ms
    assert m.oldest_wait_ms(m.oldest_waiting_ms + 1500) == 1500
    assert sum(m.completed) == 0
    assert m.last_hour.runs == 0
    assert m.last_hour.average_ms is None
    assert m.last_hour.quantile_ms(0.95) is None
    assert queue_metrics(sdk, ["nothing-here"], minutes=1)[0].completed == [0]


def test_bad_window_is_refused(redis_url, prefix):
    sdk = Sdk(redis_url, prefix=prefix)
    for bad in (0, TREND_HOURS * 60 + 1, 1.5, True):
        with pytest.raises(InvalidOptions, match="minutes must be a whole number"):
            queue_metrics(sdk, ["a"], minutes=bad)


def test_run_times_quantile_and_labels():
    # 100 runs: 90 of <= 5 ms, 10 in (1000, 2500]
    buckets = [0] * (len(RUN_BOUNDS_MS) + 1)
    buckets[0], buckets[RUN_BOUNDS_MS.index(2500)] = 90, 10
    rt = RunTimes(tuple(buckets), 90 * 3 + 10 * 2000)
    assert rt.runs == 100
    assert rt.average_ms == pytest.approx(202.7)
    assert rt.quantile_ms(0.5) == pytest.approx(5 * 50 / 90)
    assert rt.quantile_ms(0.95) == pytest.approx(1000 + 1500 * 0.5)
    over = [0] * (len(RUN_BOUNDS_MS) + 1)
    over[-1] = 1
    assert RunTimes(tuple(over), 5_000_000).quantile_ms(0.99) == RUN_BOUNDS_MS[-1]
    assert [duration_label(x) for x in (None, 850, 4210, 42_000, 210_000, 9_000_000)] == \
        ["—", "850 ms", "4.2 s", "42 s", "3.5 min", "2.5 h"]
