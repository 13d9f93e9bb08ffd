"""A client written for the original remq, unchanged, against this gateway (Channels and
``--expose``), and a DLQ rule ported from it: real Redis, channel layer and workers."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings

from django_remq.consumers.protocol import CLIENT_OPTIONS
from django_remq.core import TaskManager
from django_remq.decorators import declare, registry

from .gateway_helpers import ADA, BOB, connect, emit_over, gateway_env, until_finished, worker
from .policy_helpers import run_until
from .records import record

pytestmark = pytest.mark.redis

ANYONE = "tests.gateway_app.tasks.allow_anyone"


async def note(task: Any, ctx: Any) -> str:
    """Progress as the original's handlers often send it: data, no percentage."""
    ctx.socket.update({"note": "fetching"})
    return "noted"


@pytest.fixture
def note_handler() -> Iterator[None]:
    declare("orig.note", note, expose=True)
    yield
    registry.remove("default", "orig.note")


def iso_z(moment: datetime) -> str:
    """What ``JSON.stringify(new Date(...))`` sends."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_camelcase_options_over_the_gateway_schedule_and_retry_as_asked(
        redis_url: str) -> None:
    with gateway_env(redis_url) as env:
        comm = await connect(ADA)
        when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        task_id = await emit_over(comm, "live.report", data={"steps": 1, "fail": True,
                                                             "pause": 0}, options={
            "retryCount": 1, "retryDelayMs": 600, "delayUntil": iso_z(when), "priority": 5})
        job = env.get_job(task_id)
        assert job is not None
        assert (job.status, job.delay_until) == ("delayed", int(when.timestamp() * 1000))
        assert job.priority == 5
        assert job.state.options["retry_count"] == 1  # the handler's attempts=2 overridden
        assert job.state.options["retry_delay_ms"] == 600  # its retry_delay_ms=200 too
        async with worker():
            frames = await until_finished(comm, task_id, timeout=30)
        await comm.disconnect()
    first = next(f for f in frames if f["type"] == "task_update")
    assert first["progress"] == 100
    assert first["data"] == {"step": 1, "attempt": 1}
    assert {"type", "taskId", "data", "progress"} <= set(first)
    [retry] = [f for f in frames if f["type"] == "task_retry"]  # retryCount=1: one retry
    assert (retry["taskId"], retry["error"], retry["retryCount"]) == (task_id, "bad report", 0)
    assert 200 < retry["retryDelayMs"] <= 600  # ours, not the handler's 200 ms
    assert frames[-1]["type"] == "task_finished"
    assert (frames[-1]["taskId"], frames[-1]["status"]) == (task_id, "failed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_original_node_client_on_the_expose_server_when_the_policy_allows_it(
        redis_url: str, note_handler: None) -> None:
    """No Origin, no session, its own task id, epoch-ms delayUntil: the original's client."""
    from websockets.asyncio.client import connect as ws_connect

    from django_remq.consumers.expose import serve

    policy = {"can_emit": ANYONE, "client_options": [*CLIENT_OPTIONS, "id"]}
    with gateway_env(redis_url, **policy) as env:
        port = free_port()
        with override_settings(ALLOWED_HOSTS=["127.0.0.1"]):
            close = await serve(port, host="127.0.0.1")
        task_id = f"order-{uuid.uuid4().hex[:8]}"
        soon = int(time.time() * 1000) + 300
        try:
            async with ws_connect(f"ws://127.0.0.1:{port}/") as client:
                await client.send(json.dumps({"event": "orig.note", "data": {"n": 1}, "options": {
                    "id": task_id, "attempts": 1, "delayUntil": soon, "priority": 3}}))
                assert json.loads(await asyncio.wait_for(client.recv(), 10)) == {
                    "type": "queued", "taskId": task_id}
                job = env.get_job(task_id)
                assert job is not None
                assert (job.status, job.delay_until, job.priority) == ("delayed", soon, 3)
                frames = []
                async with worker():
                    while not frames or frames[-1]["type"] != "task_finished":
                        frames.append(json.loads(await asyncio.wait_for(client.recv(), 20)))
        finally:
            await close()
        job = env.get_job(task_id)
    [update] = [f for f in frames if f["type"] == "task_update"]
    assert (update["taskId"], update["id"]) == (task_id, task_id)
    assert (update["data"], update["progress"]) == ({"note": "fetching"}, 0)
    assert frames[-1]["status"] == "completed"
    assert job is not None
    assert job.progress == {"data": {"note": "fetching"}, "progress": 0}


async def test_a_client_chosen_id_never_reaches_another_users_task(redis_url: str) -> None:
    with gateway_env(redis_url, client_options=[*CLIENT_OPTIONS, "id"]) as env:
        bob, ada = await connect(BOB), await connect(ADA)
        shared = f"report-{uuid.uuid4().hex[:8]}"
        data = {"steps": 1, "pause": 0}
        assert await emit_over(bob, "live.report", data=data, options={"id": shared}) == shared
        # again while it waits: the original's idempotent emit, the same task
        assert await emit_over(bob, "live.report", data=data, options={"id": shared}) == shared
        await ada.send_json_to({"event": "live.report", "options": {"id": shared}})
        reply = await ada.receive_json_from(timeout=10)
        assert (reply["type"], reply["code"], reply["taskId"]) == ("error", "not_permitted",
                                                                   shared)
        assert "choose another id" in reply["message"]
        async with worker():
            frames = await until_finished(bob, shared)
        assert frames[-1]["status"] == "completed"
        assert await ada.receive_nothing(timeout=1)  # ada never followed it
        owner = env.task_manager.conn.sync.hget(
            env.task_manager.keys.queue("default").job(shared), "owner")
        assert owner == "2"  # bob's, not replaced by ada's emit
        # finished, it is still bob's: ada may not replace its record either
        await ada.send_json_to({"event": "live.report", "options": {"id": shared}})
        assert (await ada.receive_json_from(timeout=10))["code"] == "not_permitted"
        for comm in (bob, ada):
            await comm.disconnect()


async def test_update_without_progress_carries_0_live_and_on_the_record(make_tm, r, prefix):
    events: list[dict[str, Any]] = []
    tm: TaskManager = make_tm(expose=events.append)

    def plain(task: Any, ctx: Any) -> None:  # a sync handler: its events cross threads
        ctx.socket.update({"rows": 7})

    tm.register_handler(event="note", handler=note)
    tm.register_handler(event="plain", handler=plain)
    ids = [tm.emit("note"), tm.emit("plain")]
    await tm.run(burst=True)
    updates = [e for e in events if e["type"] == "task_update"]
    assert [(u["taskId"], u["data"], u["progress"]) for u in updates] == [
        (ids[0], {"note": "fetching"}, 0), (ids[1], {"rows": 7}, 0)]
    assert [record(r, prefix, i).progress for i in ids] == [
        {"data": {"note": "fetching"}, "progress": 0}, {"data": {"rows": 7}, "progress": 0}]


@pytest.mark.parametrize("retries", [0, 2, 3, 5])
async def test_a_ported_dlq_rule_dead_letters_when_the_original_would(make_tm, r, prefix,
                                                                       retries):
    """The original asks ``shouldSendToDLQ(message, error, attempts)`` once, after the last
    failure, with the retries done; ``attempts >= 3`` means "after 3 retries"."""
    asked: list[tuple[int, int]] = []

    def rule(message: Any, error: BaseException, attempts: int) -> bool:
        asked.append((message.attempt, attempts))
        return attempts >= 3

    tm: TaskManager = make_tm(processor={"dlq": {"should_send_to_dlq": rule}})
    runs: list[int] = []

    async def flaky(task: Any, ctx: Any) -> None:
        runs.append(task.attempt)
        raise RuntimeError("upstream down")

    tm.register_handler(event="sync", handler=flaky)
    job_id = tm.emit("sync", options={"retry_count": retries, "retry_delay_ms": 0})
    done = lambda: (j := record(r, prefix, job_id)) is not None and j.status == "failed"  # noqa: E731
    await run_until(tm, done, timeout=20, settle=0.2)
    assert runs == list(range(1, retries + 2))  # every attempt ran, the last failed for good
    letters = r.xrange(f"{prefix}:{{default}}:dlq")
    original_would = retries >= 3  # it passes retriedAttempts: the retries done
    assert len(letters) == int(original_would)
    assert asked == [(retries + 1, retries)]  # asked once, on the last, with retries done
    if original_would:
        fields = letters[0][1]
        assert (fields["id"], fields["reason"]) == (job_id, "retries_exhausted")
        assert fields["attempts"] == str(retries + 1)  # the entry counts the runs made
