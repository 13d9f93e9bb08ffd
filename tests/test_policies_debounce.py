"""Debounce per handler, held in Redis: leading (the original remq's) and trailing edge."""

from __future__ import annotations

import asyncio
import json

import pytest

from django_remq.core import TaskManager

from .cluster import on_both
from .policy_helpers import run_until, spawn_worker, wait_all

pytestmark = pytest.mark.processes


def job(r, prefix, job_id, queue="default"):
    return r.hgetall(f"{prefix}:{{{queue}}}:job:{job_id}")


def statuses(r, prefix, ids):
    return [job(r, prefix, i).get("status") for i in ids]


async def test_leading_default_key_is_the_handler(make_tm, r, prefix):
    """``debounce=5000`` alone: the handler runs at most once per window, whatever the ids."""
    tm: TaskManager = make_tm(concurrency=3)
    runs: list[str] = []

    async def handler(task, ctx):
        runs.append(task.id)

    tm.register_handler("e", handler, options={"debounce": 5000})
    ids = [tm.emit("e", data=n) for n in range(3)]
    await tm.run(burst=True)
    assert len(runs) == 1
    assert sorted(statuses(r, prefix, ids)) == ["cancelled", "cancelled", "completed"]
    skipped = next(i for i in ids if i not in runs)
    rec = job(r, prefix, skipped)
    assert rec["reason"].startswith(f"debounced: job {runs[0]} ran")
    logs = [json.loads(x)["message"]
            for x in r.lrange(f"{prefix}:{{default}}:logs:{skipped}", 0, -1)]
    assert any(m.startswith("debounced:") for m in logs)


async def test_leading_key_on_the_job_id_debounces_re_emits_only(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    runs: list[str] = []

    async def handler(task, ctx):
        runs.append(task.id)

    tm.register_handler("e", handler, options={"debounce": {"window_ms": 5000,
                                                            "key": lambda m: m.id}})
    first = tm.emit("e", options={"id": "same"})
    other = tm.emit("e")
    await tm.run(burst=True)
    again = tm.emit("e", options={"id": "same"})  # re-emitted inside the window
    await tm.run(burst=True)
    assert first == again == "same"
    assert runs == ["same", other]
    assert job(r, prefix, "same")["status"] == "cancelled"


async def test_trailing_default_key_merges_every_emit_of_the_handler(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    tm.register_handler("t", lambda task, ctx: None,
                        options={"debounce": {"window_ms": 60_000, "mode": "trailing"}})
    ids = [tm.emit("t", data=n) for n in range(3)]
    assert ids[0] == ids[1] == ids[2]
    assert json.loads(job(r, prefix, ids[0])["data"]) == 2


async def test_leading_with_key_function_skips_visibly(make_tm, r, prefix):
    tm: TaskManager = make_tm(concurrency=4)
    runs: list[int] = []

    async def handler(task, ctx):
        runs.append(task.data["n"])

    tm.register_handler("e", handler, options={"debounce": {
        "window_ms": 10_000, "key": lambda m: m.data["user"]}})
    ids = [tm.emit("e", data={"user": u, "n": n}) for n, u in enumerate("aabab")]
    await tm.run(burst=True)
    assert sorted(runs) == [0, 2]
    assert sorted(statuses(r, prefix, ids)) == ["cancelled"] * 3 + ["completed"] * 2


async def test_leading_window_expires(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    runs: list[str] = []

    async def handler(task, ctx):
        runs.append(task.id)

    tm.register_handler("e", handler,
                        options={"debounce": {"window_ms": 200, "key": lambda m: "k"}})
    tm.emit("e")
    await tm.run(burst=True)
    await asyncio.sleep(0.3)
    tm.emit("e")
    await tm.run(burst=True)
    assert len(runs) == 2


async def test_retries_of_the_window_holder_are_not_debounced(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    runs: list[int] = []

    async def handler(task, ctx):
        runs.append(task.attempt)
        if task.attempt < 3:
            raise RuntimeError("again")

    tm.register_handler("e", handler, options={"debounce": 10_000, "attempts": 3})
    jid = tm.emit("e")
    await run_until(tm, lambda: job(r, prefix, jid).get("status") == "completed")
    assert runs == [1, 2, 3]


@on_both()
async def test_leading_debounce_across_two_worker_processes(redis_url, make_tm, r, prefix):
    tm: TaskManager = make_tm()  # emitter only
    ids = [tm.emit("deb", data={"k": "a" if n % 4 else "b", "n": n}) for n in range(24)]
    procs = [spawn_worker(redis_url, prefix, "debounce", 0) for _ in range(2)]
    wait_all(procs)
    runs = r.lrange(f"{prefix}:test:runs", 0, -1)
    assert len(runs) == 2, runs  # one per key, whichever worker got it first
    assert sorted(statuses(r, prefix, ids)) == ["cancelled"] * 22 + ["completed"] * 2


@on_both()
async def test_trailing_runs_once_with_the_latest_data(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    runs: list[int] = []

    async def handler(task, ctx):
        runs.append(task.data["n"])

    tm.register_handler("index", handler, options={"debounce": {
        "window_ms": 300, "mode": "trailing", "key": lambda m: m.data["doc"]}})
    ids = [tm.emit("index", data={"doc": 1, "n": n}) for n in range(5)]
    other = tm.emit("index", data={"doc": 2, "n": 99})
    assert len(set(ids)) == 1
    assert other != ids[0]
    rec = job(r, prefix, ids[0])
    assert rec["status"] == "delayed"
    assert rec["debounced"] == "4"
    assert json.loads(rec["data"])["n"] == 4
    took = await run_until(tm, lambda: len(runs) == 2, settle=0.4)
    assert sorted(runs) == [4, 99]
    assert took >= 0.25
    logs = r.lrange(f"{prefix}:{{default}}:logs:{ids[0]}", 0, -1)
    assert len(logs) == 4


async def test_trailing_max_wait_bounds_the_delay(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    runs: list[int] = []

    async def handler(task, ctx):
        runs.append(task.data)

    tm.register_handler("e", handler, options={"debounce": {
        "window_ms": 300, "mode": "trailing", "max_wait_ms": 500, "key": lambda m: "k"}})
    await tm.start()
    try:
        for n in range(12):  # an emit every 100 ms for 1.2 s: never quiet for 300 ms
            await tm.aemit("e", data=n)
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.6)
    finally:
        await tm.stop()
    assert 2 <= len(runs) <= 3, runs  # max_wait forced runs despite the stream of emits
    assert runs[-1] == 11


async def test_emit_many_returns_the_ids_that_run(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    tm.register_handler("t", lambda task, ctx: None, options={"debounce": {
        "window_ms": 1000, "mode": "trailing", "key": lambda m: "k"}})
    tm.register_handler("p", lambda task, ctx: None)
    ids = tm.emit_many([{"event": "p"}, {"event": "t", "data": 1}, {"event": "p"},
                        {"event": "t", "data": 2}])
    assert ids[1] == ids[3]
    assert len({ids[0], ids[1], ids[2]}) == 3
    assert json.loads(job(r, prefix, ids[1])["data"]) == 2
