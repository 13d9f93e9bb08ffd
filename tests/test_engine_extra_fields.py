"""The engine's seams for whoever observes it (the Django layer's WebSocket gateway is
one): extra record fields written with an emit and handed back with each job to run
when the event sink names them, and a server the worker runs while it runs
(``ExposeServer``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from django_remq.core import TaskManager
from django_remq.core.errors import InvalidOptions
from django_remq.core.task_manager import ExposeServer

pytestmark = pytest.mark.redis


class Sink:
    """An event sink that asks for the record field ``tag``."""

    extra_fields = ("tag",)

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)


async def emit_with(tm: TaskManager, event: str, extra: dict[str, str] | None) -> str:
    queue, job = tm.prepare(event, None, {"n": 1}, None, extra=extra)
    return (await tm.aenqueue(queue, [job]))[0]


async def test_extra_fields_come_back_with_the_job_and_its_events(
        make_tm: Any, r: redis.Redis, prefix: str) -> None:
    sink = Sink()
    tm: TaskManager = make_tm(expose=sink)
    seen: dict[str, dict[str, str]] = {}

    async def job(task: Any, ctx: Any) -> None:
        seen[task.id] = dict(task.extra)
        ctx.socket.update({"step": 1}, 50)

    tm.register_handler(event="job", handler=job)
    tagged = await emit_with(tm, "job", {"tag": "t1", "other": "kept"})
    plain = await emit_with(tm, "job", None)
    await tm.run(burst=True)

    assert seen == {tagged: {"tag": "t1"}, plain: {}}  # only what the sink named
    record = r.hgetall(f"{prefix}:{{default}}:job:{tagged}")
    assert (record["tag"], record["other"]) == ("t1", "kept")  # stored as given
    by_job = {(e["taskId"], e["type"]): e for e in sink.events}
    for kind in ("task_update", "task_finished"):
        assert by_job[tagged, kind]["extra"] == {"tag": "t1"}
        assert by_job[plain, kind]["extra"] == {}


async def test_a_retry_event_carries_them_and_bytes_as_stored_do_not_stop_the_job(
        make_tm: Any, r: redis.Redis, prefix: str, redis_url: str) -> None:
    sink = Sink()
    tm: TaskManager = make_tm(expose=sink)
    calls = 0

    async def flaky(task: Any, ctx: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("once")

    tm.register_handler(event="flaky", handler=flaky,
                        options={"attempts": 2, "retry_delay_ms": 10})
    job_id = await emit_with(tm, "flaky", {"tag": "t2"})
    await tm.run(burst=True)
    retry = next(e for e in sink.events if e["type"] == "task_retry")
    assert retry["extra"] == {"tag": "t2"}
    finished = next(e for e in sink.events if e["type"] == "task_finished")
    assert (finished["status"], finished["extra"]) == ("completed", {"tag": "t2"})

    odd = await emit_with(tm, "flaky", None)  # a value written by someone else, not UTF-8
    raw = redis.Redis.from_url(redis_url)
    raw.hset(f"{prefix}:{{default}}:job:{odd}", "tag", b"\xff")
    raw.close()
    await tm.run(burst=True)
    assert r.hget(f"{prefix}:{{default}}:job:{odd}", "status") == "completed"
    assert [e["extra"] for e in sink.events
            if e["taskId"] == odd and e["type"] == "task_finished"] == [{"tag": "\\xff"}]
    assert job_id != odd


@pytest.mark.parametrize("extra", [{"status": "x"}, {"a,b": "x"}, {"": "x"}, {"tag": 1}])
def test_an_extra_field_cannot_take_an_engine_field_or_a_bad_name(
        make_tm: Any, extra: dict[str, Any]) -> None:
    tm: TaskManager = make_tm()
    with pytest.raises(InvalidOptions, match="extra"):
        tm.prepare("job", None, None, None, extra=extra)


async def test_a_sink_asking_for_an_engine_field_is_refused_at_start(make_tm: Any) -> None:
    sink = Sink()
    sink.extra_fields = ("deliveries",)
    tm: TaskManager = make_tm(expose=sink)
    with pytest.raises(InvalidOptions, match="extra_fields"):
        await tm.start()
    assert tm.processor is None


async def test_an_expose_server_runs_while_the_worker_runs(make_tm: Any) -> None:
    served: list[tuple[TaskManager, int]] = []
    closed = asyncio.Event()

    async def serve(tm: TaskManager, port: int) -> Any:
        served.append((tm, port))

        async def close() -> None:
            closed.set()

        return close

    tm: TaskManager = make_tm(expose=ExposeServer(4321, serve))
    assert tm.expose is None  # no sink: the Django layer may still plug one in
    await tm.start()
    assert served == [(tm, 4321)]
    assert not closed.is_set()
    await tm.stop()
    assert closed.is_set()
