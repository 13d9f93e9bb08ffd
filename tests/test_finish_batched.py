"""finish.lua's batched writes (one XDEL, ZREM and ZADD per index for a whole batch) and
its log retention set only for jobs that logged, on a real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest

from django_remq.core import TaskManager
from django_remq.core.store.keys import Keys

from .cluster import on_both
from .policy_helpers import run_until
from .workers import await_until

pytestmark = pytest.mark.redis


@on_both()
async def test_a_mixed_batch_leaves_every_index_and_the_stream_right(make_tm, r, prefix):
    """40 jobs finished by a worker of concurrency 16: completed, failed, retried later
    (delayed) and cancelled land in their own index once, none stays processing, and the
    stream keeps no acknowledged entry."""
    tm: TaskManager = make_tm(concurrency=16, processor={"retry": {"max_retries": 3}})

    async def mixed(task, ctx):
        kind = task.data["i"] % 4
        if kind == 1:
            raise RuntimeError("no")
        if kind == 2 and task.attempt == 1:
            raise RuntimeError("later")

    tm.register_handler("mixed", mixed)
    tm.register_handler("retried", mixed, options={"attempts": 2, "retry_delay_ms": 60_000})
    ids = [tm.emit("retried" if i % 4 == 2 else "mixed", data={"i": i}) for i in range(40)]
    await tm.run(burst=True)
    qk = Keys(prefix).queue("default")
    want = {"completed": {ids[i] for i in range(40) if i % 4 in (0, 3)},
            "failed": {ids[i] for i in range(40) if i % 4 == 1},
            "delayed": {ids[i] for i in range(40) if i % 4 == 2}}
    for status, members in want.items():
        assert set(r.zrange(qk.status(status), 0, -1)) == members, status
    for status in ("processing", "waiting"):
        assert r.zcard(qk.status(status)) == 0, status
    assert r.xlen(qk.stream) == 0
    assert all(r.hget(qk.job(i), "status") == s for s, m in want.items() for i in m)


async def test_logs_expire_with_the_record_when_an_earlier_attempt_logged(make_tm, r, prefix):
    """Attempt 1 logs and fails; attempt 2 logs nothing and completes: the log list
    still gets the record's retention (the record says the job logged)."""
    tm: TaskManager = make_tm(processor={"retention": {"completed_max_age_ms": 60_000}})

    async def flaky(task, ctx):
        if task.attempt == 1:
            task.logger("first try")
            raise RuntimeError("once")

    tm.register_handler("flaky", flaky, options={"attempts": 2, "retry_delay_ms": 1})
    tm.register_handler("quiet", lambda task, ctx: None)
    logged, quiet = tm.emit("flaky"), tm.emit("quiet")
    qk = Keys(prefix).queue("default")
    await run_until(tm, lambda: r.hget(qk.job(logged), "status") == "completed", settle=0.1)
    assert r.hget(qk.job(logged), "logged") == "1"
    assert r.lrange(qk.logs(logged), 0, -1)
    assert 0 < r.pttl(qk.logs(logged)) <= 60_000
    assert 0 < r.pttl(qk.job(logged)) <= 60_000
    assert not r.hexists(qk.job(quiet), "logged")
    assert 0 < r.pttl(qk.job(quiet)) <= 60_000
    assert not r.exists(qk.logs(quiet))


async def test_debounced_lines_expire_with_the_record(make_tm, r, prefix):
    """A trailing-debounced job's 'debounced' lines (written by debounce_emit.lua, not
    by a handler) get the record's retention too."""
    tm: TaskManager = make_tm(processor={"retention": {"completed_max_age_ms": 60_000}})
    tm.register_handler("d", lambda task, ctx: None,
                        options={"debounce": {"window_ms": 100, "mode": "trailing",
                                              "key": lambda m: "k"}})
    first = tm.emit("d", data={"n": 1})
    second = tm.emit("d", data={"n": 2})
    assert first == second
    qk = Keys(prefix).queue("default")
    assert r.lrange(qk.logs(first), 0, -1)
    deadline = time.monotonic() + 5
    await run_until(tm, lambda: r.hget(qk.job(first), "status") == "completed"
                    or time.monotonic() > deadline, settle=0.1)
    assert r.hget(qk.job(first), "status") == "completed"
    assert 0 < r.pttl(qk.logs(first)) <= 60_000


async def test_a_lingering_batcher_gathers_a_batch_and_never_lingers_when_hurried():
    """With a linger, items added within it go in one write; ``fill`` items go at once;
    ``drain`` and ``close`` do not wait for it."""
    from django_remq.core.worker.batcher import Batcher

    written: list[list[int]] = []

    async def write(batch: list[int]) -> None:
        written.append(batch)

    b: Batcher[int] = Batcher(write, linger=0.2, fill=3)
    b.add(1)
    await asyncio.sleep(0.05)
    b.add(2)  # within the linger: same write
    assert written == []
    await asyncio.sleep(0.3)
    assert written == [[1, 2]]
    t0 = time.monotonic()
    for i in (3, 4, 5):
        b.add(i)  # the third fills it: no wait
    await b.drain()
    assert written[-1] == [3, 4, 5]
    b.add(6)
    await b.drain()  # hurried: no 0.2 s wait
    assert written[-1] == [6]
    b.add(7)
    assert await b.close(5)
    assert written[-1] == [7]
    assert time.monotonic() - t0 < 0.15

    at_once: Batcher[int] = Batcher(write)  # no linger: an idle add goes out at once
    at_once.add(8)
    await asyncio.sleep(0.01)
    assert written[-1] == [8]


async def test_finishes_share_a_call_within_ack_linger_ms(make_tm, r, prefix):
    """At concurrency 1 each job ends alone, so each finish would be a finish.lua call of
    its own; with ``ack_linger_ms`` the finishes of jobs that end within it share one."""
    tm: TaskManager = make_tm(concurrency=1, processor={"ack_linger_ms": 500})
    tm.register_handler("quick", lambda task, ctx: None)
    ids = [tm.emit("quick", data={"i": i}) for i in range(6)]
    await tm.start()
    assert tm.processor is not None
    acker = tm.processor.consumer.acker
    sizes: list[int] = []
    finish = acker._finish

    async def noting(groups):  # what each call carries; then the call itself
        sizes.append(sum(len(outcomes) for _, outcomes in groups))
        await finish(groups)

    acker._finish = noting  # type: ignore[method-assign]
    qk = Keys(prefix).queue("default")
    try:
        assert await await_until(lambda: all(r.hget(qk.job(i), "status") == "completed"
                                             for i in ids), timeout=10)
    finally:
        await tm.stop()
    assert sum(sizes) == 6, sizes
    assert max(sizes) >= 3, sizes


def test_ack_linger_ms_is_checked():
    from django_remq.core.errors import InvalidOptions
    from django_remq.core.settings import ProcessorSettings

    assert ProcessorSettings.from_options({}).ack_linger_ms == 2
    assert ProcessorSettings.from_options({"ack_linger_ms": 0}).ack_linger_ms == 0
    for bad in (-1, 1001, 2.5, True, "2"):
        with pytest.raises(InvalidOptions, match=r"'ack_linger_ms' must be an int in 0\.\.1000"):
            ProcessorSettings.from_options({"ack_linger_ms": bad})


async def test_a_batcher_lingers_again_after_a_close():
    """A burst run's check for work left closes the acker's batcher and goes on: later
    batches still gather."""
    from django_remq.core.worker.batcher import Batcher

    written: list[list[int]] = []

    async def write(batch: list[int]) -> None:
        written.append(batch)

    b: Batcher[int] = Batcher(write, linger=0.1, fill=10)
    assert await b.close(1)
    b.add(1)
    await asyncio.sleep(0.02)
    b.add(2)
    await asyncio.sleep(0.2)
    assert written == [[1, 2]]
