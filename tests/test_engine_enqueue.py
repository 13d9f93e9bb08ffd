"""Every emit takes ``(event, data, queue, options)``; prepared jobs are written by
``enqueue`` / ``aenqueue`` (one implementation, a sync and an async driver)."""

from __future__ import annotations

import pytest

import django_remq.core.task_manager as task_manager
from django_remq.core import TaskManager

from .records import record

pytestmark = pytest.mark.redis


def data_of(r, prefix: str, job_id: str, queue: str = "default") -> object:
    job = record(r, prefix, job_id, queue)
    assert job is not None
    return job.state.data


async def test_every_emit_takes_data_then_queue(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    tm.register_handler("ev", lambda task, ctx: None, queue="q")
    tm.register_handler("ev", lambda task, ctx: None, queue="other")
    soon_id, written = tm.emit_soon("ev", {"by": "emit_soon"}, "q")
    await written
    ids = [tm.emit("ev", {"by": "emit"}, "q", {"priority": 1}),
           await tm.aemit("ev", {"by": "aemit"}, "q"), soon_id]
    assert [data_of(r, prefix, job_id, "q") for job_id in ids] == [
        {"by": "emit"}, {"by": "aemit"}, {"by": "emit_soon"}]


async def test_prepared_jobs_are_written_by_either_driver(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    data = {"n": 1}
    queue, job = tm.prepare("ev", None, data, None)
    data["n"] = 2  # encoded by prepare: the job keeps what was given
    assert tm.enqueue(queue, [job]) == [job.id]
    _, later = tm.prepare("ev", "other", {"n": 3}, None)
    assert await tm.aenqueue("other", [later]) == [later.id]
    assert data_of(r, prefix, job.id) == {"n": 1}
    assert data_of(r, prefix, later.id, "other") == {"n": 3}
    assert r.smembers(f"{prefix}:queues") >= {"default", "other"}


def test_enqueue_writes_in_chunks(make_tm, r, prefix, monkeypatch):
    monkeypatch.setattr(task_manager, "EMIT_CHUNK", 2)
    tm: TaskManager = make_tm()
    jobs = [tm.prepare("ev", None, i, None)[1] for i in range(5)]
    assert tm.enqueue("default", jobs) == [job.id for job in jobs]
    assert [data_of(r, prefix, job.id) for job in jobs] == [0, 1, 2, 3, 4]


def test_emit_many_names_the_item_whose_data_is_not_json(make_tm):
    tm: TaskManager = make_tm()
    with pytest.raises(TypeError, match=r"emit_many item 1 \('ev'\): data\['x'\] = "):
        tm.emit_many([{"event": "ev"}, {"event": "ev", "data": {"x": object()}}])
