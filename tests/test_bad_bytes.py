"""Hostile bytes cost only their own job: a record field or a stream entry that is not
UTF-8, or a record with a status no script knows, fails alone, at once, dead-lettered
with its reason; the rest of its batch runs. On a real Redis with the real worker."""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
from typing import Any

import pytest
import redis
import redis.cluster

from django_remq.core import TaskManager
from django_remq.core.errors import CorruptRecord
from django_remq.core.sdk import Sdk
from django_remq.core.store.keys import GROUP, Keys
from django_remq.core.store.records import NOT_UTF8

from .cluster import on_both
from .workers import await_until

pytestmark = pytest.mark.redis

#: Well under claim_idle_ms (30 s): nothing may wait for a reclaim.
SOON = 8.0


@pytest.fixture
def raw(redis_url: str, on_cluster: bool) -> Any:
    """A client that writes and reads bytes as they are."""
    client = (redis.cluster.RedisCluster.from_url(redis_url) if on_cluster
              else redis.Redis.from_url(redis_url))
    yield client
    client.close()


def _worker(make_tm: Any) -> tuple[TaskManager, list[str]]:
    tm: TaskManager = make_tm(concurrency=30, processor={"dlq": {}})
    ran: list[str] = []

    async def job(task: Any, ctx: Any) -> None:
        ran.append(task.id)

    tm.register_handler(event="job", handler=job)
    return tm, ran


async def _running(tm: TaskManager, r: Any, qk: Any) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """A worker started and idle in its blocking read (so new entries reach that read)."""
    stop = asyncio.Event()
    runner = asyncio.create_task(tm.run(stop_event=stop))
    first = tm.emit("job")
    assert await await_until(lambda: r.hget(qk.job(first), "status") == "completed")
    await asyncio.sleep(0.3)
    return stop, runner


def entry_bytes(kept: dict[str, str]) -> dict[bytes, bytes]:
    """A malformed entry's fields as written: those named under NOT_UTF8 unescaped."""
    bad = set(json.loads(kept.get(NOT_UTF8, "[]")))

    def back(text: str, escaped: bool) -> bytes:
        return codecs.escape_decode(text.encode())[0] if escaped else text.encode()

    return {back(k, k in bad): back(v, k in bad) for k, v in kept.items() if k != NOT_UTF8}


def _dead(r: Any, qk: Any) -> dict[str, dict[str, str]]:
    return {fields["id"]: fields for _, fields in r.xrange(qk.dlq())}


@on_both()
@pytest.mark.parametrize("path", ["fetch", "blocking read"])
async def test_a_job_field_that_is_not_utf8_fails_alone_and_its_batch_runs(
        make_tm, r, raw, prefix, caplog, path):
    caplog.set_level(logging.ERROR, logger="django_remq")
    tm, ran = _worker(make_tm)
    qk = Keys(prefix).queue("default")
    stop = runner = None
    if path == "blocking read":
        stop, runner = await _running(tm, r, qk)
    # for a running worker, delayed: the record is damaged before its entry is written
    options = {"delay_ms": 500} if runner is not None else {}
    ids = tm.emit_many({"event": "job", "data": i, "options": options} for i in range(21))
    bad = ids[10]
    raw.hset(qk.job(bad), "data", b"\xff\xfe")
    try:
        if runner is None:
            await asyncio.wait_for(tm.run(burst=True), SOON)
        else:
            assert await await_until(lambda: r.zcard(qk.status("failed")) == 1, SOON)
            assert await await_until(lambda: set(ids) - {bad} <= set(ran), SOON)
    finally:
        if stop is not None and runner is not None:
            stop.set()
            await runner
    assert set(ids) - {bad} <= set(ran)
    assert bad not in ran
    assert raw.hget(qk.job(bad), "status") == b"failed"
    assert raw.hget(qk.job(bad), "data") == b"\xff\xfe"  # kept as found
    assert r.zscore(qk.status("processing"), bad) is None
    assert r.xlen(qk.stream) == 0
    dead = _dead(r, qk)
    assert set(dead) == {bad}
    assert dead[bad]["reason"] == "corrupt"
    assert "'data'" in dead[bad]["error"] or "data=" in dead[bad]["error"]
    assert "UTF-8" in dead[bad]["error"]
    # the dead letter keeps the record's bytes, escaped
    copy = json.loads(dead[bad]["job"])
    assert codecs.escape_decode(copy["data"].encode())[0] == b"\xff\xfe"
    assert any(bad in m and "UTF-8" in m for m in caplog.messages)


async def test_the_sdk_reads_a_field_that_is_not_utf8_as_corrupt_record(make_tm, r, raw, prefix):
    tm, _ = _worker(make_tm)
    ids = tm.emit_many({"event": "job", "data": i} for i in range(3))
    qk = Keys(prefix).queue("default")
    raw.hset(qk.job(ids[1]), "data", b"\xff\xfe")
    raw.rpush(qk.logs(ids[2]), b'{"message": "\xc3", "timestamp": 1}')
    sdk = Sdk(r, prefix=prefix)
    with pytest.raises(CorruptRecord, match=rf"job {ids[1]} in queue 'default'.*'data'.*UTF-8"):
        sdk.get_job(ids[1], "default")
    with pytest.raises(CorruptRecord, match=rf"job {ids[1]} in queue 'default'.*'data'"):
        await sdk.aget_job(ids[1], "default")
    with pytest.raises(CorruptRecord, match=rf"job {ids[2]}.*log line 0"):
        sdk.get_job(ids[2], "default")
    assert sdk.get_job(ids[0], "default").state.data == 0
    listed = sdk.list_jobs("default")  # the rest of the page is read
    assert ids[0] in {j.id for j in listed}
    assert ids[1] not in {j.id for j in listed}
    assert [c.id for c in listed.corrupt] == [ids[1]]
    assert "UTF-8" in str(listed.corrupt[0].error)
    assert [c.id for c in sdk.search_jobs(ids[1]).jobs.corrupt] == [ids[1]]


ENTRIES = [
    pytest.param({b"id": b"\xff\xfe"}, id="id not UTF-8"),
    pytest.param({b"id": b"j-1", b"note": b"caf\xe9"}, id="another value"),
    pytest.param({b"\xff": b"x", b"id": b"j-2"}, id="a field name"),
]


@on_both()
@pytest.mark.parametrize("path", ["fetch", "blocking read"])
@pytest.mark.parametrize("entry", ENTRIES)
async def test_a_stream_entry_that_is_not_utf8_fails_at_once_as_malformed(
        make_tm, r, raw, prefix, caplog, path, entry):
    caplog.set_level(logging.ERROR, logger="django_remq")
    tm, ran = _worker(make_tm)
    qk = Keys(prefix).queue("default")
    stop = runner = None
    if path == "blocking read":
        stop, runner = await _running(tm, r, qk)
    before = tm.emit_many({"event": "job"} for _ in range(5))
    eid = raw.xadd(qk.stream, entry).decode()
    after = tm.emit_many({"event": "job"} for _ in range(5))
    stand_in = qk.job(f"malformed-{eid}")
    try:
        if runner is None:
            await asyncio.wait_for(tm.run(burst=True), SOON)
        else:
            assert await await_until(lambda: r.hget(stand_in, "status") == "failed", SOON)
            assert await await_until(lambda: set(before + after) <= set(ran), SOON)
    finally:
        if stop is not None and runner is not None:
            stop.set()
            await runner
    assert set(before + after) <= set(ran)
    assert r.hget(stand_in, "status") == "failed"
    assert r.xlen(qk.stream) == 0
    assert r.xpending(qk.stream, GROUP)["pending"] == 0
    dead = _dead(r, qk)[f"malformed-{eid}"]
    assert dead["reason"] == "malformed"
    assert "UTF-8" in dead["error"]
    # nothing is lost: the entry's fields, the bad ones escaped, give its bytes back
    assert entry_bytes(json.loads(json.loads(dead["job"])["data"])) == entry
    assert any(eid in m and "UTF-8" in m for m in caplog.messages)


async def test_a_record_with_an_unknown_status_fails_as_corrupt(make_tm, r, prefix, caplog):
    caplog.set_level(logging.ERROR, logger="django_remq")
    tm, ran = _worker(make_tm)
    ids = tm.emit_many({"event": "job", "data": i} for i in range(5))
    qk = Keys(prefix).queue("default")
    r.hset(qk.job(ids[2]), "status", "weird")
    sdk = Sdk(r, prefix=prefix)
    with pytest.raises(CorruptRecord, match=rf"job {ids[2]}.*'status'.*'weird'"):
        sdk.get_job(ids[2], "default")
    await asyncio.wait_for(tm.run(burst=True), SOON)
    assert sorted(ran) == sorted(ids[:2] + ids[3:])
    assert r.hget(qk.job(ids[2]), "status") == "failed"
    for status in ("waiting", "processing"):
        assert r.zscore(qk.status(status), ids[2]) is None
    failed = sdk.list_jobs("default", "failed")
    assert [j.id for j in failed] == [ids[2]]
    assert failed[0].errors[-1].type == "CorruptRecord"
    assert "weird" in failed[0].errors[-1].message
    dead = _dead(r, qk)
    assert dead[ids[2]]["reason"] == "corrupt"
    assert "weird" in dead[ids[2]]["error"]
    assert any(ids[2] in m and "weird" in m for m in caplog.messages)


def test_a_dead_letter_holding_bytes_that_are_not_utf8_is_listed_escaped(r, raw, prefix):
    keys = Keys(prefix)
    qk = keys.queue("default")
    r.sadd(keys.queues, "default")
    r.xadd(qk.dlq(), {"id": "good", "queue": "default", "reason": "error", "job": "{}"})
    raw.xadd(qk.dlq(), {b"id": b"bad", b"queue": b"default", b"reason": b"r\xff",
                        b"job": b'{"data": "\xfe"}'})
    sdk = Sdk(r, prefix=prefix)  # a client that decodes: the Sdk reads with its own
    entries = sdk.list_dlq()
    assert [e.id for e in entries] == ["bad", "good"]
    assert entries[0].reason == "r\\xff"
    assert sdk.dlq_page()[0] == 2
