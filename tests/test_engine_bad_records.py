"""One bad record costs only itself: finishing, dead-lettering and reading a batch."""

from __future__ import annotations

import asyncio

import pytest

from django_remq.core import TaskManager
from django_remq.core.errors import CorruptRecord
from django_remq.core.sdk import Sdk
from django_remq.core.store.keys import Keys

from .test_engine_crashes import wait_until


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
    assert wait_until(lambda: r.xlen(f"{prefix}:dlq") == 1, timeout=10)
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
    assert await run_until(tm, lambda: r.xlen(f"{prefix}:dlq") == 5)
    sdk = Sdk(r, prefix=prefix)
    assert sorted(e.id for e in sdk.list_dlq()) == sorted(ids)
    with pytest.raises(CorruptRecord, match="options"):
        sdk.get_job("odd", "default")
    assert sdk.get_job(ids[1], "default").status == "failed"
