"""Sdk operations on one job, on the real Redis: happy paths and every invalid state."""

from __future__ import annotations

import asyncio

import pytest
import redis

from django_remq.core import InvalidJobState, TaskManager
from django_remq.core.sdk import Sdk
from django_remq.core.store.keys import Keys

from .cluster import client_for, on_both
from .sdk_seed import hold_a_running_job

pytestmark = pytest.mark.redis


@pytest.fixture
def sdk(redis_url: str, prefix: str, on_cluster: bool) -> Sdk:
    return Sdk(redis_url, prefix=prefix, cluster=on_cluster)


def stream_ids(r: redis.Redis, prefix: str, queue: str = "default") -> list[str]:
    return [f["id"] for _, f in r.xrange(Keys(prefix).queue(queue).stream)]


async def fail_once_tm(make_tm, runs: list[int]) -> TaskManager:
    tm: TaskManager = make_tm()

    async def flaky(task, ctx):
        runs.append(task.attempt)
        task.logger(f"run {len(runs)}")
        if len(runs) == 1:
            raise RuntimeError("first run fails")
        return "ok"

    tm.register_handler(event="flaky", handler=flaky)
    return tm


@on_both()
def test_get_job_returns_record_logs_and_none_when_missing(sdk, make_tm):
    tm = make_tm()
    job_id = tm.emit("hello", data={"x": 1}, options={"attempts": 2})
    job = sdk.get_job(job_id, "default")
    assert job is not None
    assert (job.id, job.status, job.state.name, job.state.data) == (job_id, "waiting", "hello",
                                                                   {"x": 1})
    assert job.retry_count == 2
    assert sdk.get_job("nope", "default") is None
    assert sdk.get_job(job_id, "other") is None


def test_get_job_rejects_bad_queue_name(sdk):
    with pytest.raises(ValueError, match="queue name"):
        sdk.get_job("x", "bad:queue")


@on_both()
async def test_retry_job_runs_a_failed_job_again_and_keeps_history(sdk, make_tm):
    runs: list[int] = []
    tm = await fail_once_tm(make_tm, runs)
    job_id = tm.emit("flaky")
    await tm.run(burst=True)
    failed = await sdk.aget_job(job_id, "default")
    assert failed is not None
    assert failed.status == "failed"
    assert len(failed.errors) == 1

    retried = sdk.retry_job(job_id, "default")
    assert retried is not None
    assert retried.status == "waiting"
    await tm.run(burst=True)

    done = sdk.get_job(job_id, "default")
    assert done is not None
    assert done.status == "completed"
    assert done.result == "ok"
    assert len(runs) == 2
    assert [e.message for e in done.errors] == ["first run fails"]
    assert [e.message for e in done.logs] == ["run 1", "run 2"]


def test_retry_job_invalid_states(sdk, make_tm, r, prefix):
    tm = make_tm()
    job_id = tm.emit("hello")
    with pytest.raises(InvalidJobState, match=rf"job {job_id} in queue 'default': it is waiting"):
        sdk.retry_job(job_id, "default")
    assert sdk.retry_job("missing", "default") is None
    assert stream_ids(r, prefix) == [job_id]  # untouched


async def test_retry_job_of_a_cancelled_job_runs_it(sdk, make_tm):
    tm: TaskManager = make_tm()
    seen: list[str] = []
    tm.register_handler(event="e", handler=lambda task, ctx: seen.append(task.id))
    job_id = tm.emit("e")
    assert sdk.cancel_job(job_id, "default") is True
    await tm.run(burst=True)
    assert seen == []
    assert await sdk.aretry_job(job_id, "default") is not None
    await tm.run(burst=True)
    assert seen == [job_id]


async def test_cancel_prevents_running_waiting_and_delayed_jobs(sdk, make_tm, r, prefix):
    tm: TaskManager = make_tm()
    seen: list[str] = []
    tm.register_handler(event="e", handler=lambda task, ctx: seen.append(task.id))
    keep = tm.emit("e")
    gone = tm.emit("e")
    later = tm.emit("e", options={"delay_ms": 50})
    assert sdk.cancel_job(gone, "default") is True
    assert await sdk.acancel_job(later, "default") is True
    assert stream_ids(r, prefix) == [keep]  # the cancelled job's entry is gone too
    await asyncio.sleep(0.1)
    await tm.run(burst=True)
    assert seen == [keep]
    job = sdk.get_job(gone, "default")
    assert job is not None
    assert job.status == "cancelled"
    assert job.finished_at
    assert sdk.cancel_job(gone, "default") is True  # idempotent
    assert sdk.cancel_job("missing", "default") is False
    with pytest.raises(InvalidJobState, match=rf"cannot cancel job {keep} in queue 'default': "
                                              r"it is completed"):
        sdk.cancel_job(keep, "default")


@on_both()
async def test_cancel_a_running_job_requests_cooperative_cancellation(sdk, make_tm):
    tm: TaskManager = make_tm()
    started, release = asyncio.Event(), asyncio.Event()
    seen_flag: list[bool] = []

    async def slow(task, ctx):
        started.set()
        await release.wait()
        seen = await sdk.aget_job(task.id, task.queue)
        seen_flag.append(seen is not None and seen.cancel_requested)

    tm.register_handler(event="slow", handler=slow)
    job_id = tm.emit("slow")
    runner = asyncio.create_task(tm.run(burst=True))
    await asyncio.wait_for(started.wait(), 20)
    assert await sdk.acancel_job(job_id, "default") is True
    job = await sdk.aget_job(job_id, "default")
    assert job is not None
    assert job.status == "processing"
    assert job.cancel_requested
    release.set()
    await asyncio.wait_for(runner, 20)
    assert seen_flag == [True]  # the running handler can see the request on its record


async def test_delete_job_removes_everything(sdk, make_tm, r, prefix):
    tm: TaskManager = make_tm()
    seen: list[str] = []
    tm.register_handler(event="e", handler=lambda task, ctx: seen.append(task.id))
    keep, gone = tm.emit("e"), tm.emit("e")
    later = tm.emit("e", options={"delay_ms": 60_000})
    assert sdk.delete_job(gone, "default") is True
    assert sdk.delete_job(later, "default") is True
    assert sdk.delete_job(gone, "default") is False
    assert stream_ids(r, prefix) == [keep]
    qk = Keys(prefix).queue("default")
    assert not r.exists(qk.job(gone), qk.logs(gone), qk.job(later))
    assert r.zcard(qk.delayed) == 0
    await tm.run(burst=True)
    assert seen == [keep]
    assert sdk.delete_job(keep, "default") is True  # a finished job too
    stats = sdk.get_queue_stats("default")
    assert stats.total == 0


async def test_pause_job_holds_it_while_others_run_then_resume_runs_it(sdk, make_tm, r, prefix):
    tm: TaskManager = make_tm()
    seen: list[str] = []
    tm.register_handler(event="e", handler=lambda task, ctx: seen.append(task.id))
    held, other = tm.emit("e"), tm.emit("e")
    paused = sdk.pause_job(held, "default")
    assert paused is not None
    assert paused.status == "paused"
    assert paused.paused
    assert stream_ids(r, prefix) == [other]
    assert sdk.pause_job(held, "default").status == "paused"  # idempotent
    await tm.run(burst=True)
    assert seen == [other]
    assert sdk.get_queue_stats("default").paused == 1

    resumed = await sdk.aresume_job(held, "default")
    assert resumed is not None
    assert resumed.status == "waiting"
    await tm.run(burst=True)
    assert seen == [other, held]
    assert sdk.pause_job("missing", "default") is None
    assert sdk.resume_job("missing", "default") is None


def test_pause_and_resume_keep_a_delayed_jobs_time(sdk, make_tm, r, prefix):
    tm = make_tm()
    job_id = tm.emit("e", options={"delay_ms": 60_000})
    run_at = sdk.get_job(job_id, "default").delay_until
    sdk.pause_job(job_id, "default")
    qk = Keys(prefix).queue("default")
    assert r.zcard(qk.delayed) == 0
    resumed = sdk.resume_job(job_id, "default")
    assert resumed.status == "delayed"
    assert resumed.delay_until == run_at
    assert r.zscore(qk.delayed, job_id) == run_at
    assert sdk.resume_job(job_id, "default").status == "delayed"  # not paused: unchanged


async def test_pause_and_resume_refuse_running_and_finished_jobs(sdk, make_tm):
    tm: TaskManager = make_tm()
    job_id, release, runner = await hold_a_running_job(tm)
    with pytest.raises(InvalidJobState, match=rf"cannot pause job {job_id} in queue 'default': "
                                              r"it is processing"):
        await sdk.apause_job(job_id, "default")
    with pytest.raises(InvalidJobState, match="it is processing"):
        sdk.resume_job(job_id, "default")
    release.set()
    await asyncio.wait_for(runner, 20)
    with pytest.raises(InvalidJobState, match="it is completed"):
        sdk.pause_job(job_id, "default")
    with pytest.raises(InvalidJobState, match="it is completed"):
        sdk.resume_job(job_id, "default")


@on_both()
def test_sdk_accepts_a_client(redis_url, prefix, make_tm):
    tm = make_tm()
    job_id = tm.emit("e")
    client = client_for(redis_url)  # bytes replies (a RedisCluster on the cluster)
    try:
        job = Sdk(client, prefix=prefix).get_job(job_id, "default")
    finally:
        client.close()
    assert job is not None
    assert job.id == job_id
