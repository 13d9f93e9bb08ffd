"""An idle worker costs Redis a few commands a second whatever the number of queues it
serves, and still wakes at once for what it used to poll for: new work, a due delayed
job, a retry, a new priority lane, a resumed queue, a crashed worker's entries.

Counts, not timings, bound the cost (INFO commandstats on a redis-server of the test's
own); the wake-ups are checked with generous bounds (a loaded CI host)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis

from django_remq.core import TaskManager
from django_remq.core.worker.wakeups import parse

from .cluster import on_both
from .workers import await_until, spawn_worker, stop_worker, wait_until

pytestmark = pytest.mark.redis

QUEUES = [f"q{i}" for i in range(50)]


def commands(client: redis.Redis) -> int:
    """Commands Redis ran so far, the INFO calls that ask left out."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info")


@asynccontextmanager
async def worker(tm: TaskManager, queues: list[str]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    runner = asyncio.create_task(tm.run(queues, stop_event=stop))
    try:
        await asyncio.sleep(0.5)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(runner, 20)


def recorder(tm: TaskManager, queues: list[str]) -> dict[str, float]:
    """job id -> when its handler started (time.time())."""
    started: dict[str, float] = {}

    async def job(task: Any, ctx: Any) -> None:
        started[task.id] = time.time()

    for q in queues:
        tm.register_handler(event="job", handler=job, queue=q)
    return started


async def test_an_idle_worker_serving_50_queues_sends_a_few_commands_a_second(
        private_redis_url):
    tm = TaskManager.init(db=private_redis_url, prefix="idle", concurrency=16)
    recorder(tm, QUEUES)
    client = redis.Redis.from_url(private_redis_url)
    async with worker(tm, QUEUES):
        await asyncio.sleep(2.0)  # start-up over (groups made, every queue promoted once)
        before = commands(client)
        await asyncio.sleep(4.0)
        sent = commands(client) - before
    client.close()
    # today's design: ~1 blocking read a second, a heartbeat every claim_idle_ms / 3; the
    # one it replaced polled each queue 10 times a second (~3,500 commands/s here)
    assert sent <= 4 * 5, f"{sent} commands in 4 s from an idle worker serving 50 queues"


@on_both()
async def test_a_delayed_job_runs_on_time_on_an_idle_worker_serving_many_queues(
        make_tm, r, prefix, on_cluster):
    queues = [f"q{i}" for i in range(200)]
    tm: TaskManager = make_tm(concurrency=4)
    started = recorder(tm, queues)
    async with worker(tm, queues):
        # started: subscribed to the wake channel (a cluster's 200 slots take a while)
        assert await await_until(
            lambda: tm.processor.consumer.housekeeping.wakeups.subscribed.is_set(), timeout=10)
        due = time.time() + 0.6
        job_id = await tm.aemit("job", queue="q137", options={"delay_until": int(due * 1000)})
        assert await await_until(lambda: job_id in started, timeout=10)
    late = started[job_id] - due
    assert late >= -0.005  # never before its time (clocks: Redis's and ours are one host's)
    # a cluster wakes one slot's read and ends the other 199 (CLIENT UNBLOCK) first
    bound = 1.0 if on_cluster else 0.3
    assert late < bound, f"ran {late * 1000:.0f} ms after it was due"


async def test_a_retry_with_a_delay_comes_back_on_an_idle_worker(make_tm, r, prefix):
    tm: TaskManager = make_tm(concurrency=2)
    attempts: list[float] = []

    async def flaky(task: Any, ctx: Any) -> None:
        attempts.append(time.time())
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")

    for q in QUEUES:
        tm.register_handler(event="flaky", handler=flaky, queue=q)
    async with worker(tm, QUEUES):
        await tm.aemit("flaky", queue="q7", options={"attempts": 1, "retry_delay_ms": 500})
        assert await await_until(lambda: len(attempts) == 2, timeout=10)
    assert 0.45 <= attempts[1] - attempts[0] < 1.5


@on_both()
async def test_a_new_priority_lane_and_a_resumed_queue_are_read_by_an_idle_worker(
        make_tm, r, prefix):
    tm: TaskManager = make_tm(concurrency=2)
    started = recorder(tm, QUEUES)
    async with worker(tm, QUEUES):
        urgent = await tm.aemit("job", queue="q3", options={"priority": 9})
        assert await await_until(lambda: urgent in started, timeout=5)
        await tm.apause_queue("q4")
        held = await tm.aemit("job", queue="q4")
        await asyncio.sleep(1.5)
        assert held not in started
        await tm.aresume_queue("q4")
        assert await await_until(lambda: held in started, timeout=5)


def test_a_crashed_workers_entries_are_reclaimed_by_an_idle_worker_of_many_queues(
        redis_url, r, prefix, make_tm):
    """The survivor serves 30 queues and polls none of them: it learns of the crash
    from the registry (a missed heartbeat) and takes the entries as they come due."""
    tm: TaskManager = make_tm()
    # the victim's runs outlast the survivor's start on a loaded host (3 s did not);
    # the reclaimed runs are short
    ids = tm.emit_many({"event": "sleep", "data": {"s": 60.0, "again": 0.3}}
                       for _ in range(2))
    victim = spawn_worker(redis_url, prefix, "--concurrency", "4", "--claim-idle-ms", "1500")
    assert wait_until(lambda: r.llen(f"{prefix}:started") == 2)
    survivor = spawn_worker(redis_url, prefix, "--concurrency", "4", "--claim-idle-ms", "1500",
                            "--queues", ",".join(["default", *(f"q{i}" for i in range(29))]))
    try:
        time.sleep(1.0)  # idle, past its start-up scan (which found nothing due yet)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = time.time()
        assert wait_until(lambda: r.llen(f"{prefix}:started") == 4, timeout=15)
        took = time.time() - killed_at
        assert wait_until(lambda: r.llen(f"{prefix}:finished") == 2, timeout=15)
    finally:
        stop_worker(survivor)
    assert set(r.lrange(f"{prefix}:finished", 0, -1)) == set(ids)
    # entries come due claim_idle_ms (1.5 s) after their last renewal, no later than the
    # kill; the survivor reclaims within a step of that, plus one short blocking read
    assert took < 1.5 + 1.5, f"reclaimed {took:.1f} s after the kill"


def test_wake_messages_are_parsed_and_unknown_ones_ignored():
    assert parse(b"due q1 1765000000123") == ("due", "q1", 1765000000123)
    assert parse("lane my.queue 0") == ("lane", "my.queue", 0)
    for bad in (b"", b"due q1", b"due q1 soon", b"due q1 1 extra", "\xff"):
        assert parse(bad) is None


async def test_a_due_message_heard_during_a_promote_round_is_not_erased_by_its_replies(
        make_tm, r, prefix):
    """A round's promote replies may predate a "due" message heard while they were on the
    wire (the worker's first round over many queues, say): the message's due time stays,
    or the job would wait for the hourly sweep."""
    tm: TaskManager = make_tm(concurrency=1)
    started = recorder(tm, QUEUES)
    async with worker(tm, QUEUES):
        hk = tm.processor.consumer.housekeeping  # type: ignore[union-attr]
        round_ = asyncio.create_task(hk.promote(["q5"]))
        await asyncio.sleep(0)  # the round's script is sent; its reply not yet read
        due_ms = hk.redis_now() + 300
        hk._on_message("due", "q5", due_ms)  # as the wake listener would, meanwhile
        await round_  # q5 had nothing due when the script ran
        assert hk._due.get("q5") == due_ms
        hk._on_message("due", "q5", due_ms + 60_000)  # a later one does not push it back
        assert hk._due["q5"] == due_ms
        # and the worker acts on it: a job due then, promoted by it, runs
        job = await tm.aemit("job", queue="q5", options={"delay_until": due_ms})
        assert await await_until(lambda: job in started, timeout=10)
