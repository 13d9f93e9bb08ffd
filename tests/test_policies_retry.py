"""Retries (the original remq's two-level combo), the DLQ and timeouts, on a real Redis."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import pytest

from django_remq.core import TaskManager
from django_remq.core.errors import UnknownEventWarning
from django_remq.core.sdk import Sdk

from .cluster import on_both
from .policy_helpers import run_until

pytestmark = pytest.mark.redis


def job(r, prefix, job_id, queue="default"):
    return r.hgetall(f"{prefix}:{{{queue}}}:job:{job_id}")


def dlq(prefix, queue="default", name="dlq"):
    """A queue's dead-letter stream (the DLQ is per queue, written with the failure)."""
    return f"{prefix}:{{{queue}}}:{name}"


def final(r, prefix, job_id):
    return lambda: job(r, prefix, job_id).get("status") in ("completed", "failed", "cancelled")


def failing(runs, exc=None):
    async def handler(task, ctx):
        runs.append(time.monotonic())
        raise exc or RuntimeError("flaky")
    return handler


@on_both()
@pytest.mark.parametrize(("max_retries", "attempts"), [(0, 1), (5, 4)])
async def test_attempts_3_within_the_processors_max_retries(make_tm, r, prefix, max_retries,
                                                             attempts):
    """Both levels must allow a retry: max_retries=0 turns them off, 5 lets 3 through."""
    tm: TaskManager = make_tm(processor={"retry": {"max_retries": max_retries}})
    runs: list[float] = []
    tm.register_handler("e", failing(runs), options={"attempts": 3})
    jid = tm.emit("e")
    await run_until(tm, final(r, prefix, jid), settle=0.2)
    assert len(runs) == attempts
    rec = job(r, prefix, jid)
    assert rec["status"] == "failed"
    assert int(rec.get("retried_attempts", 0)) == attempts - 1
    assert int(rec.get("retry_count", 0)) == 0
    errors = json.loads(rec["errors"])
    assert [e["attempt"] for e in errors] == list(range(1, attempts + 1))
    assert all(e["message"] == "flaky" for e in errors)


async def test_emit_options_override_handler_options(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    runs: list[float] = []
    tm.register_handler("e", failing(runs), options={"attempts": 5})
    jid = tm.emit("e", options={"retry_count": 1})
    await run_until(tm, final(r, prefix, jid), settle=0.2)
    assert len(runs) == 2


async def test_success_after_a_retry(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    runs: list[int] = []

    async def handler(task, ctx):
        runs.append(task.attempt)
        if task.attempt == 1:
            raise OSError("network")
        return "ok"

    tm.register_handler("e", handler, options={"attempts": 3})
    jid = tm.emit("e")
    await run_until(tm, final(r, prefix, jid))
    assert runs == [1, 2]
    rec = job(r, prefix, jid)
    assert (rec["status"], rec["result"], rec["retried_attempts"]) == ("completed", '"ok"', "1")
    assert json.loads(rec["errors"])[0]["message"] == "network"


async def test_per_task_retry_delay_is_respected_and_visible(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={"retry": {"retry_delay_ms": 10}})
    runs: list[float] = []
    tm.register_handler("e", failing(runs))
    jid = tm.emit("e", options={"attempts": 2, "retry_delay_ms": 400})
    seen_delayed: list[dict[str, str]] = []

    def done() -> bool:
        rec = job(r, prefix, jid)
        if rec.get("status") == "delayed":
            seen_delayed.append(rec)
        return rec.get("status") == "failed"

    await run_until(tm, done)
    assert len(runs) == 3
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert all(g >= 0.39 for g in gaps), gaps  # no earlier than the per-task delay
    assert seen_delayed, "a scheduled retry is a delayed job"
    rec = seen_delayed[0]
    assert int(rec["delay_until"]) >= int(json.loads(rec["errors"])[0]["timestamp"]) + 390


async def test_exponential_backoff_end_to_end(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={"retry": {"retry_delay_ms": 100, "backoff": {
        "kind": "exponential", "factor": 3, "max_ms": 10_000}}})
    runs: list[float] = []
    tm.register_handler("e", failing(runs), options={"attempts": 2})
    jid = tm.emit("e")
    await run_until(tm, final(r, prefix, jid))
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert gaps[0] >= 0.099, gaps
    assert gaps[1] >= 0.299, gaps


@on_both()
async def test_should_retry_false_means_one_run_and_a_dlq_entry(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={
        "retry": {"max_retries": 5, "should_retry": lambda err, n: "validation" not in str(err)},
        "dlq": {}})
    runs: list[float] = []
    tm.register_handler("e", failing(runs, ValueError("validation: bad email")),
                        options={"attempts": 3})
    jid = tm.emit("e", data={"email": "x"})
    await run_until(tm, lambda: r.xlen(dlq(prefix)) > 0)
    assert len(runs) == 1
    [(_entry_id, fields)] = r.xrange(dlq(prefix))
    assert set(fields) == {"id", "queue", "name", "reason", "error", "attempts", "job"}
    assert json.loads(fields["job"])["status"] == "failed"  # the record's own fields
    assert fields["id"] == jid
    assert fields["queue"] == "default"
    assert fields["name"] == "e"
    assert fields["reason"] == "retry_refused"
    assert fields["error"] == "ValueError: validation: bad email"
    assert fields["attempts"] == "1"
    [letter] = Sdk(r, prefix=prefix).list_dlq()  # the Sdk decodes the record
    assert letter.job["status"] == "failed"
    assert letter.job["state"]["data"] == {"email": "x"}
    assert letter.job["errors"][0]["message"] == "validation: bad email"


async def test_should_send_to_dlq_filters_and_custom_stream(make_tm, r, prefix):
    seen = []

    def should_send(message, error, attempts):
        seen.append((message.name, type(error).__name__, attempts))
        return message.data == "keep"

    stream = dlq(prefix, name="my-dlq")
    tm: TaskManager = make_tm(processor={"dlq": {"stream_key": "my-dlq",
                                                 "should_send_to_dlq": should_send}})
    tm.register_handler("e", failing([]), options={"attempts": 1})
    a, b = tm.emit("e", data="keep"), tm.emit("e", data="drop")
    await run_until(tm, lambda: final(r, prefix, a)() and final(r, prefix, b)(), settle=0.2)
    assert sorted(seen) == [("e", "RuntimeError", 1)] * 2  # retries done, as the original
    entries = r.xrange(stream)
    assert [f["id"] for _, f in entries] == [a]
    assert entries[0][1]["reason"] == "retries_exhausted"
    assert r.xlen(dlq(prefix)) == 0


@pytest.mark.parametrize(("processor", "written"), [(None, 0), ({"dlq": {}}, 1)])
async def test_the_dlq_is_written_only_when_configured(make_tm, r, prefix, processor, written):
    """run_until returns once the worker stopped, and stopping drains the DLQ writer: the
    configured case shows a write has landed by then, so no entry means none was made."""
    tm: TaskManager = make_tm(processor=processor)
    tm.register_handler("e", failing([]))
    jid = tm.emit("e")
    await run_until(tm, final(r, prefix, jid))
    assert r.xlen(dlq(prefix)) == written


@on_both()
async def test_poison_message_goes_to_the_dlq(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={"dlq": {}, "max_deliveries": 2})
    runs: list[float] = []
    tm.register_handler("e", failing(runs))
    jid = tm.emit("e")
    r.hset(f"{prefix}:{{default}}:job:{jid}", "deliveries", 2)  # two workers died on it
    await run_until(tm, lambda: r.xlen(dlq(prefix)) > 0)
    assert runs == []
    fields = r.xrange(dlq(prefix))[0][1]
    assert fields["reason"] == "poison"
    assert fields["id"] == jid
    assert "PoisonMessage" in fields["error"]
    assert job(r, prefix, jid)["status"] == "failed"


async def test_malformed_entry_goes_to_the_dlq(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={"dlq": {}})
    tm.register_handler("e", failing([]))
    await tm.start()
    await tm.stop()  # groups exist now
    r.xadd(f"{prefix}:{{default}}:stream", {"name": "e", "junk": "1"})
    await run_until(tm, lambda: r.xlen(dlq(prefix)) > 0)
    fields = r.xrange(dlq(prefix))[0][1]
    assert fields["reason"] == "malformed"
    assert fields["queue"] == "default"


async def test_unknown_event_goes_to_the_dlq(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={"dlq": {}})
    tm.register_handler("known", failing([]))
    with pytest.warns(UnknownEventWarning):
        jid = tm.emit("nobody-handles-this", queue="default")
    await run_until(tm, lambda: r.xlen(dlq(prefix)) > 0)
    fields = r.xrange(dlq(prefix))[0][1]
    assert (fields["reason"], fields["id"]) == ("unknown_event", jid)


async def test_dlq_is_capped(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={"dlq": {"maxlen": 50}, "retention": {
        "failed_max_count": None, "failed_max_age_ms": None}})
    tm.register_handler("e", failing([]))
    tm.emit_many([{"event": "e", "options": {"id": str(n)}} for n in range(1000)])
    await tm.run(burst=True)
    assert Sdk(r, prefix=prefix).get_queue_stats("default").failed == 1000
    assert 50 <= r.xlen(dlq(prefix)) <= 150  # MAXLEN ~ trims whole nodes (100 entries)


@on_both()
async def test_dlq_entry_can_be_requeued(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={"dlq": {}})
    calls: list[int] = []

    async def handler(task, ctx):
        calls.append(task.data)
        if len(calls) == 1:
            raise RuntimeError("first time")
        return "fixed"

    tm.register_handler("e", handler)
    jid = tm.emit("e", data=7)
    await run_until(tm, lambda: r.xlen(dlq(prefix)) > 0)
    sdk = Sdk(tm.conn.sync, prefix=prefix)
    [letter] = sdk.list_dlq()
    assert letter.id == jid
    assert sdk.requeue_dlq(letter.entry_id).id == jid
    assert r.xlen(dlq(prefix)) == 0
    await run_until(tm, lambda: job(r, prefix, jid).get("status") == "completed")
    assert calls == [7, 7]


async def test_async_timeout_cancels_and_follows_retry_policy(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    cancelled: list[int] = []

    async def slow(task, ctx):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(task.attempt)
            raise

    tm.register_handler("slow", slow, options={"timeout_ms": 150})
    jid = tm.emit("slow", options={"attempts": 1})
    took = await run_until(tm, final(r, prefix, jid))
    assert took < 3
    assert cancelled == [1, 2]
    rec = job(r, prefix, jid)
    assert rec["status"] == "failed"
    errors = json.loads(rec["errors"])
    assert [e["type"] for e in errors] == ["TaskTimeout", "TaskTimeout"]
    assert "timeout_ms=150" in errors[0]["message"]


async def test_sync_timeout_abandons_and_ignores_the_result(make_tm, r, prefix):
    tm: TaskManager = make_tm(concurrency=2)

    def slow(task, ctx):
        time.sleep(0.8)
        return "too late"

    tm.register_handler("slow", slow)
    jid = tm.emit("slow", options={"timeout_ms": 100})
    took = await run_until(tm, final(r, prefix, jid))
    assert took < 0.7
    await asyncio.sleep(1.0)  # the abandoned thread finishes; its result goes nowhere
    rec = job(r, prefix, jid)
    assert rec["status"] == "failed"
    assert "result" not in rec
    assert json.loads(rec["errors"])[0]["type"] == "TaskTimeout"


@pytest.mark.parametrize("kind", ["retry_count", "attempts"])
async def test_retry_count_and_attempts_are_the_same(make_tm, r, prefix, kind):
    tm: TaskManager = make_tm()
    runs: list[float] = []
    tm.register_handler("e", failing(runs))
    jid = tm.emit("e", options={kind: 2})
    await run_until(tm, final(r, prefix, jid), settle=0.2)
    assert len(runs) == 3
