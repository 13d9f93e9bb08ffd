"""Bulk operations on 10,000 jobs, the dead-letter queue, and the worker list."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest

from django_remq.core import InvalidOptions, MalformedMessage, TaskManager
from django_remq.core.sdk import Sdk
from django_remq.core.store.keys import Keys

from .cluster import on_both
from .sdk_seed import dead_letter, hold_a_running_job, seed_finished

pytestmark = pytest.mark.redis

N = 10_000


@pytest.fixture
def sdk(redis_url: str, prefix: str, on_cluster: bool) -> Sdk:
    return Sdk(redis_url, prefix=prefix, cluster=on_cluster)


async def test_retry_all_failed_on_10k_jobs_runs_them(sdk, r, prefix, make_tm):
    seed_finished(r, prefix, "default", N, "failed", name="work")
    assert sdk.retry_all_failed("default", batch_size=700) == N
    qk = Keys(prefix).queue("default")
    stats = sdk.get_queue_stats("default")
    assert (stats.failed, stats.waiting) == (0, N)
    assert r.xlen(qk.stream) == N
    job = sdk.get_job("failed-0000042", "default")
    assert job.status == "waiting"
    assert len(job.errors) == 1
    assert sdk.retry_all_failed("default") == 0

    tm: TaskManager = make_tm(concurrency=50)
    tm.register_handler(event="work", handler=lambda task, ctx: None)
    await tm.run(burst=True)
    assert sdk.get_queue_stats("default").completed == N


async def test_delete_completed_older_than_on_10k_jobs(sdk, r, prefix):
    now = int(time.time() * 1000)
    seed_finished(r, prefix, "default", N, "completed", start_ms=now - 3_600_000 - N)
    recent = seed_finished(r, prefix, "default", 5, "failed", start_ms=now)
    seed_finished(r, prefix, "other", 3, "completed", start_ms=now - 3_600_000 - N)
    deleted = await sdk.adelete_completed_older_than("default", timedelta(minutes=30),
                                                     batch_size=999)
    assert deleted == N
    qk = Keys(prefix).queue("default")
    assert r.zcard(qk.status("completed")) == 0
    assert not r.exists(qk.job("completed-0000000"), qk.job("completed-0009999"))
    assert sdk.get_queue_stats("other").completed == 3
    assert sdk.delete_completed_older_than("default", 0, status="failed") == len(recent)


def test_bulk_arguments_are_checked(sdk):
    with pytest.raises(InvalidOptions, match="status must be one of"):
        sdk.delete_completed_older_than("default", 0, status="waiting")
    with pytest.raises(InvalidOptions, match="older_than"):
        sdk.delete_completed_older_than("default", -5)
    with pytest.raises(InvalidOptions, match="batch_size"):
        sdk.retry_all_failed("default", batch_size=0)


def letter(r, prefix, job_id, queue="default", job=None):
    record = job if job is not None else {"id": job_id, "name": "work", "queue": queue,
                                          "data": "7", "status": "failed"}
    return dead_letter(r, prefix, {"id": job_id, "queue": queue, "name": "work",
                                   "reason": "retries exhausted", "error": "boom",
                                   "attempts": "3", "job": json.dumps(record)}, queue=queue)


@on_both()
async def test_dlq_list_and_requeue_runs_the_job(sdk, r, prefix, make_tm):
    seed_finished(r, prefix, "default", 1, "failed", name="work")  # record still there
    kept = letter(r, prefix, "failed-0000000")
    lost = letter(r, prefix, "expired-job")  # its record is gone: rebuilt from the copy
    time.sleep(0.002)  # a later ms: streams of different queues order by time
    elsewhere = letter(r, prefix, "elsewhere", queue="other")
    entries = sdk.list_dlq()  # every queue's stream, newest first
    assert [e.entry_id for e in entries] == [elsewhere, lost, kept]
    assert entries[1].job["state"]["data"] == 7  # the record, decoded
    assert entries[1].attempts == 3
    assert [e.id for e in await sdk.alist_dlq(queue="other")] == ["elsewhere"]
    assert len(sdk.list_dlq(limit=1, offset=2)) == 1

    seen = []
    tm: TaskManager = make_tm()
    tm.register_handler(event="work", handler=lambda task, ctx: seen.append(task.data))
    assert sdk.requeue_dlq(kept).status == "waiting"
    job = await sdk.arequeue_dlq(lost)
    assert job.status == "waiting"
    assert job.state.data == 7
    assert sdk.requeue_dlq(lost) is None
    await tm.run(burst=True)
    assert sorted(seen) == [0, 7]
    assert [e.id for e in sdk.list_dlq()] == ["elsewhere"]
    assert sdk.get_queue_stats("default").dlq == 0  # each queue counts its own
    assert sdk.get_queue_stats("other").dlq == 1


def test_dlq_bad_entries(sdk, r, prefix):
    with pytest.raises(InvalidOptions, match="DLQ entry id"):
        sdk.requeue_dlq("nope")
    with pytest.raises(InvalidOptions, match="'<queue>:<stream id>'"):
        sdk.delete_dlq("1700000000000-0")  # a stream id alone: which queue?
    bad = dead_letter(r, prefix, {"reason": "x"})
    with pytest.raises(MalformedMessage, match="names no job id"):
        sdk.requeue_dlq(bad)
    assert sdk.delete_dlq(bad) is True
    assert sdk.delete_dlq(bad) is False
    assert sdk.list_dlq() == []


@on_both()
async def test_workers_from_heartbeats(sdk, make_tm):
    tm: TaskManager = make_tm(processor={"claim_idle_ms": 1500})  # heartbeat every 0.5 s
    job_id, release, runner = await hold_a_running_job(tm)
    for _ in range(200):
        workers = await sdk.aget_workers()
        if workers and workers[0].running:
            break
        await asyncio.sleep(0.05)
    [w] = workers
    assert w.running == [job_id]
    assert w.queues == ["default"]
    assert w.pid > 0
    assert w.to_dict()["host"]
    release.set()
    await asyncio.wait_for(runner, 20)
    assert sdk.get_workers() == []  # a stopped worker leaves the registry
