"""Any bytes, through the real scripts (Hypothesis, on a real Redis): whatever a job record
or a stream entry holds, the Sdk reads a job or a CorruptRecord naming the field;
deliver.lua's reply, read as the worker reads it, decodes, and each delivery becomes a
Message or an error naming what is wrong; and a real worker, given a batch with such
records and entries between good jobs, runs every good job and dead-letters every bad
one with its reason, without waiting for a reclaim."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_remq.core import TaskManager
from django_remq.core.errors import CorruptRecord
from django_remq.core.policies import failures
from django_remq.core.sdk import Sdk
from django_remq.core.store import calls
from django_remq.core.store.keys import GROUP, Keys
from django_remq.core.store.scripts import run
from django_remq.core.worker.deliveries import to_message
from django_remq.core.worker.reader import undecoded

from .test_bad_bytes import entry_bytes

pytestmark = pytest.mark.redis

NAMED = re.compile(r"fields? ['\"]|log line \d+|not a hash")
#: the examples share the test's prefix: each takes queues of its own
_queues = itertools.count()
FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def _not_utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return True
    return False


def outcome(fn: Any, *args: Any, errors: Any = CorruptRecord) -> Any:
    """``fn(*args)``, or the error of ``errors`` it raised (any other propagates)."""
    try:
        return fn(*args)
    except errors as exc:
        return exc


#: bytes that are not UTF-8: a bad byte somewhere in any bytes
BAD = st.tuples(st.binary(max_size=12),
                st.sampled_from([b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80",
                                 b"\xf4\x90\x80\x80", b"\xe2\x82", b"\xc3"]),
                st.binary(max_size=12)).map(b"".join).filter(_not_utf8)
ANY = st.binary(max_size=24) | BAD | st.sampled_from([b"", b"null", b"1", b"{}", b"[1]",
                                                       b"waiting", b"processing", b"weird"])
RECORD_FIELDS = [b"id", b"name", b"queue", b"data", b"options", b"status", b"timestamp",
                 b"priority", b"errors", b"progress", b"result", b"deliveries",
                 b"retried_attempts", b"retry_count", b"watch", b"entry", b"worker"]


@pytest.fixture
def raw(redis_url: str) -> Any:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURES)
@given(fields=st.dictionaries(st.sampled_from(RECORD_FIELDS) | ANY, ANY, max_size=8),
       logs=st.lists(ANY, max_size=3))
def test_any_bytes_in_a_record_read_as_a_job_or_a_corrupt_record(r, raw, prefix, fields,
                                                                  logs):
    queue = f"q{next(_queues)}"
    qk = Keys(prefix).queue(queue)
    if fields:
        raw.hset(qk.job("j1"), mapping=fields)
        raw.zadd(qk.status("waiting"), {"j1": 1})
    if logs:
        raw.rpush(qk.logs("j1"), *logs)
    sdk = Sdk(r, prefix=prefix)
    job = outcome(sdk.get_job, "j1", queue)
    if isinstance(job, CorruptRecord):
        assert NAMED.search(str(job)), str(job)
    else:
        assert (job is None) == (not fields)
    listed = sdk.list_jobs(queue)  # a page: the job, or named as corrupt, never an error
    assert len(listed) + len(listed.corrupt) == (1 if fields else 0)


ENTRY = st.dictionaries(st.sampled_from([b"id", b"name"]) | ANY, ANY, min_size=1, max_size=3)
RUN_FIELDS = [f.encode() for f in calls.RUN_FIELDS]


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURES)
@given(entries=st.lists(ENTRY, max_size=3),
       record=st.dictionaries(st.sampled_from([*RUN_FIELDS, b"status"]), ANY, max_size=3))
def test_deliver_makes_any_entry_a_message_or_an_error_naming_it(make_tm, raw, prefix,
                                                                 entries, record):
    queue = f"q{next(_queues)}"
    qk = Keys(prefix).queue(queue)
    raw.hset(qk.job("j1"), mapping={b"id": b"j1", b"name": b"work", b"queue": queue.encode(),
                                    b"data": b"null", b"status": b"waiting", **record})
    raw.xgroup_create(qk.stream, GROUP, id="0", mkstream=True)
    sent = [raw.xadd(qk.stream, {"id": "j1"}).decode()]
    sent += [raw.xadd(qk.stream, e).decode() for e in entries]
    tm: TaskManager = make_tm()
    # as the worker reads it: undecoded, then value by value (no bytes may fail the reply)
    got = run(tm.conn.raw_sync,
              undecoded(calls.fetch(qk, "w1", 10, lock_ms=30_000, max_deliveries=5)))
    assert {d.entry_id for d in got} <= set(sent)
    for d in got:
        if d.verdict == "run":
            msg = outcome(to_message, queue, d, errors=failures.UNREADABLE)
            if isinstance(msg, Exception):
                assert NAMED.search(str(failures.unreadable(queue, d.job_id, d.fields, msg)))
            else:
                assert msg.name
        elif d.verdict == "corrupt":
            error = failures.corrupt_verdict(queue, d.job_id, d.fields["corrupt_field"],
                                             d.fields["corrupt_value"])
            assert d.fields["corrupt_field"] in str(error)
        elif d.verdict == "malformed":
            entry = entries[sent.index(d.entry_id) - 1]
            recorded = failures.malformed(queue, d.entry_id, d.fields)
            assert recorded.dead is not None
            assert recorded.dead["reason"] == "malformed"
            # nothing lost: the fields, the bad ones escaped, give the bytes back
            assert entry_bytes(json.loads(recorded.fields["data"])) == entry


def _wipe(r: Any, prefix: str) -> None:
    keys = list(r.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        r.delete(*keys)


SOON = 8.0  # well under claim_idle_ms (30 s): no reclaim may be waited for


@settings(max_examples=6, deadline=None, suppress_health_check=FIXTURES)
@given(good=st.integers(3, 12),
       bad_records=st.lists(st.tuples(st.sampled_from([*RUN_FIELDS, b"status"]), BAD),
                            min_size=1, max_size=3),
       bad_entries=st.lists(st.dictionaries(st.sampled_from([b"id", b"x"]) | ANY, BAD,
                                            min_size=1, max_size=2), min_size=1, max_size=3),
       order=st.randoms(use_true_random=False))
def test_a_worker_runs_the_good_jobs_and_dead_letters_each_bad_one_with_its_reason(
        make_tm, r, raw, prefix, good, bad_records, bad_entries, order):
    _wipe(r, prefix)
    tm: TaskManager = make_tm(concurrency=16, processor={"dlq": {}})
    ran: list[str] = []
    tm.register_handler("work", lambda task, ctx: ran.append(task.id))
    qk = Keys(prefix).queue("default")
    ids = tm.emit_many({"event": "work", "data": i} for i in range(good + len(bad_records)))
    bad_ids = order.sample(ids, len(bad_records))
    for job_id, (field, value) in zip(bad_ids, bad_records, strict=True):
        raw.hset(qk.job(job_id), field, value)
    malformed = [raw.xadd(qk.stream, e).decode() for e in bad_entries]
    asyncio.run(asyncio.wait_for(tm.run(burst=True), SOON))
    assert sorted(ran) == sorted(set(ids) - set(bad_ids))
    dead = {f["id"]: f for _, f in r.xrange(qk.dlq())}
    for job_id, (field, _) in zip(bad_ids, bad_records, strict=True):
        assert r.hget(qk.job(job_id), "status") == "failed"
        assert dead[job_id]["reason"] == "corrupt"
        assert field.decode() in dead[job_id]["error"]
    for eid, entry in zip(malformed, bad_entries, strict=True):
        letter = dead[f"malformed-{eid}"]
        assert letter["reason"] == "malformed"
        assert "UTF-8" in letter["error"]
        assert entry_bytes(json.loads(json.loads(letter["job"])["data"])) == entry
    assert r.xlen(qk.stream) == 0
    assert r.xpending(qk.stream, GROUP)["pending"] == 0
