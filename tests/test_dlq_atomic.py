"""A job fails with its dead letter in one script call, or not at all.

A worker killed between two steps cannot be timed in a test, so this proves the
structure instead: one finish.lua call (one EVALSHA) leaves both the failed record
and the DLQ entry, and nothing else writes dead letters.
"""

from __future__ import annotations

import json

import pytest
import redis

from django_remq.core import TaskManager
from django_remq.core.policies import dlq, failures
from django_remq.core.sdk import Sdk
from django_remq.core.store import calls, scripts
from django_remq.core.store.calls import Outcome, Retention
from django_remq.core.store.keys import GROUP, Keys, QueueKeys

pytestmark = pytest.mark.redis


def delivered(r: redis.Redis, tm: TaskManager, qk: QueueKeys, n: int = 1) -> list[calls.Delivery]:
    """Emit ``n`` jobs and deliver them to a consumer, as a worker's read does."""
    r.xgroup_create(qk.stream, GROUP, id="0", mkstream=True)
    tm.emit_many([{"event": "e", "data": i} for i in range(n)])
    got = scripts.run(r, calls.fetch(qk, "c1", n, lock_ms=30_000, max_deliveries=5))
    assert [d.verdict for d in got] == ["run"] * n
    return got


def dead(d: calls.Delivery, reason: str = "retries_exhausted") -> Outcome:
    entry = dlq.entry(d.job_id, "default", "e", reason, "RuntimeError: boom", 3)
    return Outcome(d.entry_id, d.job_id, "failed",
                   error=failures.error_json(RuntimeError("boom"), 3), dead=entry)


def test_one_finish_call_writes_the_failure_and_its_dead_letter(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    qk = Keys(prefix).queue("default")
    [d] = delivered(r, tm, qk)
    r.rpush(qk.logs(d.job_id), json.dumps({"message": "step 1", "timestamp": 1}))
    assert scripts.run(r, calls.finish(qk, [dead(d)], Retention(), dlq=("dlq", 100))) == [1]

    record = r.hgetall(qk.job(d.job_id))
    assert record["status"] == "failed"
    [(entry_id, entry)] = r.xrange(qk.dlq())
    assert (entry["id"], entry["queue"], entry["reason"]) == (d.job_id, "default",
                                                              "retries_exhausted")
    # the record names its one dead letter (a retry or a next failure drops it)
    assert record.pop("dlq_entry") == entry_id
    assert json.loads(entry["job"]) == record  # the final record, as the same call left it
    assert json.loads(entry["logs"]) == r.lrange(qk.logs(d.job_id), 0, -1)
    [letter] = Sdk(r, prefix=prefix).list_dlq()
    assert letter.entry_id.startswith("default:")
    assert letter.job["status"] == "failed"
    assert letter.job["logs"][0]["message"] == "step 1"

    # applied once: the same outcome again (a reclaimed copy) adds no second entry
    assert scripts.run(r, calls.finish(qk, [dead(d)], Retention(), dlq=("dlq", 100))) == [0]
    assert r.xlen(qk.dlq()) == 1


def test_no_dlq_or_no_dead_entry_writes_nothing(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    qk = Keys(prefix).queue("default")
    a, b, c = delivered(r, tm, qk, 3)
    refused = Outcome(b.entry_id, b.job_id, "failed", error=dead(b).error)  # the predicate said no
    both = calls.finish(qk, [dead(a), refused], Retention(), dlq=("dlq", 100))
    assert scripts.run(r, both) == [1, 1]
    assert [f["id"] for _, f in r.xrange(qk.dlq())] == [a.job_id]
    assert scripts.run(r, calls.finish(qk, [dead(c)], Retention())) == [1]  # no DLQ configured
    assert r.hget(qk.job(c.job_id), "status") == "failed"
    assert r.xlen(qk.dlq()) == 1


def test_a_corrupt_record_is_dead_lettered_by_the_same_call(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    qk = Keys(prefix).queue("default")
    [d] = delivered(r, tm, qk)
    r.delete(qk.job(d.job_id))
    r.set(qk.job(d.job_id), "clobbered")
    done = Outcome(d.entry_id, d.job_id, "completed")
    replies = scripts.run(r, calls.finish(qk, [done], Retention(), dlq=("dead", 10)))
    assert replies == [calls.FINISH_CORRUPT]
    [(_, entry)] = r.xrange(qk.dlq("dead"))  # the configured stream name, in the queue
    assert (entry["id"], entry["reason"]) == (d.job_id, "corrupt")
    assert "clobbered" in json.loads(entry["job"])["data"]


def test_a_dlq_key_that_is_no_stream_costs_the_entry_not_the_failure(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    qk = Keys(prefix).queue("default")
    [d] = delivered(r, tm, qk)
    r.set(qk.dlq(), "not a stream")
    assert scripts.run(r, calls.finish(qk, [dead(d)], Retention(), dlq=("dlq", 100))) == [1]
    assert r.hget(qk.job(d.job_id), "status") == "failed"
    assert r.xpending(qk.stream, GROUP)["pending"] == 0


async def test_worker_failures_reach_each_queues_own_stream(make_tm, r, prefix):
    tm: TaskManager = make_tm(processor={"dlq": {}})

    async def boom(task, ctx):
        raise RuntimeError("boom")

    tm.register_handler("e", boom, queue="mail")
    tm.register_handler("e", boom, queue="sms")
    ids = [tm.emit("e", queue="mail"), tm.emit("e", queue="sms")]
    await tm.run(burst=True)  # burst ends once the outcomes (and so the letters) are written
    keys = Keys(prefix)
    assert [f["id"] for _, f in r.xrange(keys.queue("mail").dlq())] == ids[:1]
    assert [f["id"] for _, f in r.xrange(keys.queue("sms").dlq())] == ids[1:]
    sdk = Sdk(r, prefix=prefix)
    assert sdk.get_dlq_length() == 2
    assert sorted(e.id for e in sdk.list_dlq()) == sorted(ids)
    assert [e.id for e in sdk.list_dlq(queue="sms")] == ids[1:]
    total, page = sdk.dlq_page(limit=1)
    assert (total, len(page)) == (2, 1)
    requeued = sdk.requeue_dlq(sdk.list_dlq(queue="mail")[0].entry_id)
    assert requeued is not None
    assert requeued.status == "waiting"
    assert sdk.get_dlq_length() == 1
