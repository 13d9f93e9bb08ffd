"""One bad record costs only itself: finishing, dead-lettering and reading a batch."""

from __future__ import annotations

import asyncio

import pytest

from django_remq.core import TaskManager
from django_remq.core.errors import CorruptRecord
from django_remq.core.sdk import Sdk
from django_remq.core.store.keys import Keys

from .sdk_seed import dead_letter

pytestmark = pytest.mark.redis


async def run_until(tm: TaskManager, predicate, timeout: float = 20.0) -> bool:
    await tm.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if predicate():
                return True
            await asyncio.sleep(0.05)
        return False
    finally:
        await tm.stop()


async def test_a_record_replaced_by_a_string_does_not_cost_the_batch(make_tm, r, prefix):
    tm: TaskManager = make_tm(concurrency=30, processor={"dlq": {}})
    qk = Keys(prefix).queue("default")
    started: list[str] = []
    go = asyncio.Event()
    runs: list[str] = []

    async def work(task, ctx):
        runs.append(task.id)
        started.append(task.id)
        if len(started) == 30:
            go.set()
        await go.wait()
        if task.id == "bad":  # someone clobbers this record while it runs
            r.delete(qk.job("bad"))
            r.set(qk.job("bad"), "not a hash")

    tm.register_handler(event="work", handler=work)
    ids = tm.emit_many([{"event": "work", "options": {"id": "bad"}},
                        *({"event": "work"} for _ in range(29))])
    sdk = Sdk(r, prefix=prefix)

    def settled() -> bool:
        stats = sdk.get_queue_stats("default")
        return stats.completed == 29 and stats.failed == 1

    assert await run_until(tm, settled), sdk.get_queue_stats("default")
    assert sorted(runs) == sorted(ids)  # nothing ran twice
    for job_id in ids[1:]:
        assert sdk.get_job(job_id, "default").status == "completed"
    bad = sdk.get_job("bad", "default")
    assert bad.status == "failed"
    assert bad.errors[-1].type == "CorruptRecord"
    assert "not a hash" in str(bad.state.data) or "string" in bad.errors[-1].message
    assert r.xlen(qk.stream) == 0  # every entry acknowledged: nothing loops
    assert r.xlen(qk.dlq()) == 1  # written by the call that failed the job
    [entry] = sdk.list_dlq()
    assert (entry.id, entry.reason) == ("bad", "corrupt")


async def test_one_record_with_bad_options_does_not_drop_other_dlq_entries(make_tm, r, prefix):
    tm: TaskManager = make_tm(concurrency=5, processor={"dlq": {}})
    qk = Keys(prefix).queue("default")
    started: list[str] = []
    go = asyncio.Event()

    async def fail(task, ctx):
        started.append(task.id)
        if len(started) == 5:
            go.set()
        await go.wait()
        if task.id == "odd":
            r.hset(qk.job("odd"), "options", "[1, 2]")  # a list, not an object
        raise RuntimeError("boom")

    tm.register_handler(event="fail", handler=fail)
    ids = tm.emit_many([{"event": "fail", "options": {"id": "odd"}},
                        *({"event": "fail"} for _ in range(4))])
    assert await run_until(tm, lambda: r.xlen(qk.dlq()) == 5)
    sdk = Sdk(r, prefix=prefix)
    assert sorted(e.id for e in sdk.list_dlq()) == sorted(ids)
    with pytest.raises(CorruptRecord, match="options"):
        sdk.get_job("odd", "default")
    assert sdk.get_job(ids[1], "default").status == "failed"


@pytest.mark.parametrize(("fields", "field"), [
    ({"options": "[1, 2]"}, "options"),
    ({"options": "{not json"}, "options"),
    ({"data": "{oops"}, "data"),
    ({"errors": '{"a": 1}'}, "errors"),
    ({"errors": '[{"unexpected": 1}]'}, "errors"),
    ({"timestamp": "soon"}, "timestamp"),
    ({"retry_count": "x"}, "retry_count"),
    ({"options": '{"priority": "high"}'}, "options"),
    ({"name": ""}, "name"),
])
def test_decoding_a_damaged_record_raises_only_corrupt_record(fields, field):
    from django_remq.core.store.records import decode

    good = {"id": "j1", "name": "ev", "queue": "default", "data": "null"}
    with pytest.raises(CorruptRecord, match=f"job j1 in queue 'default'.*{field}"):
        decode({**good, **fields}, None, "default")


def test_decoding_bad_log_lines_raises_corrupt_record():
    from django_remq.core.store.records import decode

    good = {"id": "j1", "name": "ev", "queue": "default"}
    with pytest.raises(CorruptRecord, match="log line 1"):
        decode(good, ['{"message": "ok", "timestamp": 1}', "[]"])


def test_sdk_reads_a_non_hash_record_as_corrupt(r, prefix):
    qk = Keys(prefix).queue("default")
    r.set(qk.job("s"), "not a hash")
    r.set(qk.logs("s"), "not a list either")
    with pytest.raises(CorruptRecord, match="string, not a hash"):
        Sdk(r, prefix=prefix).get_job("s", "default")


async def test_acker_splits_a_failing_batch_and_applies_the_rest(make_tm, r, prefix):
    """Should a finish call still fail (a script error), the outcomes are applied one by
    one: the one that fails alone is left pending (logged), the others land."""
    from redis.exceptions import ResponseError

    from django_remq.core.store.calls import Outcome, Retention
    from django_remq.core.worker.acker import Acker

    tm: TaskManager = make_tm()
    ids = tm.emit_many({"event": "x"} for _ in range(4))
    qk = Keys(prefix).queue("default")
    for job_id in ids:  # as deliver.lua leaves them
        r.hset(qk.job(job_id), "status", "processing")
    r.xgroup_create(qk.stream, "remq", id="0", mkstream=True)
    entries = r.xreadgroup("remq", "c1", {qk.stream: ">"}, count=10)[0][1]
    by_job = {fields["id"]: eid for eid, fields in entries}
    applied: list[tuple[str, bool]] = []
    acker = Acker(tm.conn, tm.keys, Retention(), lambda q, o, ok: applied.append((o.job_id, ok)))
    real = acker._finish

    async def finish(groups):  # fault injection: a script error whenever ids[0] is in it
        if any(o.job_id == ids[0] for _, outcomes in groups for o in outcomes):
            raise ResponseError("injected script error")
        await real(groups)

    acker._finish = finish
    for job_id in ids:
        acker.add("default", Outcome(by_job[job_id], job_id, "completed"))
    assert await acker.close(10)
    assert sorted(applied) == sorted((i, True) for i in ids[1:])
    sdk = Sdk(r, prefix=prefix)
    assert [sdk.get_job(i, "default").status for i in ids] == ["processing", *["completed"] * 3]
    assert r.xpending(qk.stream, "remq")["pending"] == 1  # left for redelivery, not lost


async def test_batcher_retries_gives_up_and_keeps_order():
    from django_remq.core.worker.batcher import Batcher

    written: list[list[int]] = []
    calls = 0

    async def write(batch):
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ConnectionError("away")
        if 99 in batch:
            raise ValueError("poison")
        written.append(batch)

    def retry(batch, exc, failures):
        return 0.01 if isinstance(exc, ConnectionError) else None

    b: Batcher[int] = Batcher(write, retry=retry)
    b.add(1)
    b.add(2)
    await asyncio.sleep(0)
    b.add(3)
    assert await b.close(5)
    assert [x for batch in written for x in batch] == [1, 2, 3]
    b.add(99)  # given up: dropped, the batcher carries on
    assert await b.close(5)
    b.add(4)
    assert await b.close(5)
    assert written[-1] == [4]

    strict: Batcher[int] = Batcher(write)  # no retry: the error reaches drain()
    strict.add(99)
    with pytest.raises(ValueError, match="poison"):
        await strict.drain()


def test_a_hand_written_dlq_entry_does_not_cost_the_listing(r, prefix):
    sdk = Sdk(r, prefix=prefix)
    dead_letter(r, prefix, {"id": "a", "queue": "default", "reason": "x", "attempts": "1",
                            "job": "{}"})
    dead_letter(r, prefix, {"id": "b", "queue": "default", "attempts": "many",
                            "job": "{not json", "logs": "[oops"})
    entries = sdk.list_dlq()
    assert [e.id for e in entries] == ["b", "a"]
    assert entries[0].attempts == 0
    assert entries[0].job == {"raw": "{not json"}


async def test_a_failing_event_sink_does_not_cost_other_outcomes(make_tm, r, prefix):
    seen: list[str] = []

    def sink(event):
        if event.get("type") == "task_finished":
            seen.append(event["taskId"])
            if len(seen) == 1:
                raise RuntimeError("sink broke")

    tm: TaskManager = make_tm(concurrency=5, expose=sink)
    go = asyncio.Event()
    started: list[str] = []

    async def work(task, ctx):
        started.append(task.id)
        if len(started) == 5:
            go.set()
        await go.wait()

    tm.register_handler("work", work)
    ids = tm.emit_many({"event": "work"} for _ in range(5))
    sdk = Sdk(r, prefix=prefix)
    assert await run_until(tm, lambda: sdk.get_queue_stats("default").completed == 5)
    assert sorted(seen) == sorted(ids)  # every outcome reported, after the one that raised
