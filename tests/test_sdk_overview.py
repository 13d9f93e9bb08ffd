"""Sdk reads behind the admin pages: finished counts per window, cron schedules."""

from __future__ import annotations

import time

import pytest

from django_remq.core import InvalidOptions, TaskManager
from django_remq.core.sdk import Sdk

from .policy_helpers import run_until
from .sdk_seed import dead_letter, seed_finished

pytestmark = pytest.mark.redis


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_finished_counts_per_window_sync_and_async(redis_url, r, prefix):
    now = now_ms()
    seed_finished(r, prefix, "mail", 5, "completed", start_ms=now - 10_000)  # last minute
    seed_finished(r, prefix, "mail", 3, "failed", start_ms=now - 600_000)    # last hour
    seed_finished(r, prefix, "mail", 4, "cancelled", start_ms=now - 7_200_000)  # older
    seed_finished(r, prefix, "idle", 2, "completed", start_ms=now - 7_200_000)
    sdk = Sdk(redis_url, prefix=prefix)
    counts = {(c.queue, c.window_ms): c for c in sdk.get_finished_counts()}
    assert set(counts) == {("mail", 60_000), ("mail", 3_600_000), ("idle", 60_000),
                           ("idle", 3_600_000)}
    minute, hour = counts[("mail", 60_000)], counts[("mail", 3_600_000)]
    assert (minute.completed, minute.failed, minute.cancelled) == (5, 0, 0)
    assert (hour.completed, hour.failed, hour.cancelled) == (5, 3, 0)
    assert counts[("idle", 3_600_000)].completed == 0
    day = await sdk.aget_finished_counts(["mail"], windows_ms=[86_400_000])
    assert [(d.completed, d.failed, d.cancelled) for d in day] == [(5, 3, 4)]
    assert day[0].to_dict()["window_ms"] == 86_400_000


def test_finished_counts_refuses_a_bad_window(redis_url, prefix):
    with pytest.raises(InvalidOptions, match="windows_ms"):
        Sdk(redis_url, prefix=prefix).get_finished_counts(windows_ms=[0])
    with pytest.raises(ValueError, match="queue name"):
        Sdk(redis_url, prefix=prefix).get_finished_counts(["bad:name"])


async def test_cron_schedules_listed_with_next_tick_and_runs(make_tm, redis_url, prefix):
    tm: TaskManager = make_tm()
    runs: list[str] = []

    async def tick(task, ctx):
        runs.append(task.id)

    tm.register_handler("tick", tick, queue="beat", options={"repeat": {"every_ms": 1000}})
    tm.register_handler("nightly", tick, options={"repeat": {"pattern": "0 3 * * *"}})
    sdk = Sdk(redis_url, prefix=prefix)
    assert sdk.list_cron() == []
    await run_until(tm, lambda: len(runs) >= 1 and len(sdk.list_cron()) == 2)
    schedules = await sdk.alist_cron()
    by_event = {c.event: c for c in schedules}
    assert set(by_event) == {"tick", "nightly"}
    assert by_event["tick"].queue == "beat"
    assert by_event["tick"].runs >= 1
    assert by_event["nightly"].runs == 0
    assert by_event["nightly"].next_run > now_ms()
    assert schedules[0].event == "tick"  # soonest first
    assert [c.event for c in sdk.list_cron(["default"])] == ["nightly"]


async def test_dlq_length(redis_url, r, prefix):
    sdk = Sdk(redis_url, prefix=prefix)
    assert sdk.get_dlq_length() == 0
    dead_letter(r, prefix, {"id": "j1", "queue": "default", "reason": "poison"})
    dead_letter(r, prefix, {"id": "j2", "queue": "mail", "reason": "poison"}, queue="mail")
    assert sdk.get_dlq_length() == 2
    assert await sdk.aget_dlq_length() == 2
