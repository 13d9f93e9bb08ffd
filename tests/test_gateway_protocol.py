"""The gateway's protocol over Channels' WebsocketCommunicator, with a real
channels-redis layer, a real Redis and the real worker in the same loop."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from django_remq import emit
from django_remq.testing import RemqTestEnv

from .gateway_helpers import (
    ADA,
    ANON,
    BOSS,
    connect,
    emit_over,
    gateway_env,
    until_finished,
    worker,
)

pytestmark = pytest.mark.redis


@pytest.fixture
def env(redis_url: str) -> Iterator[RemqTestEnv]:
    with gateway_env(redis_url) as test_env:
        yield test_env


async def test_emit_gets_queued_then_live_updates_in_order_and_one_finished(
        env: RemqTestEnv) -> None:
    comm = await connect(ADA)
    async with worker():
        task_id = await emit_over(comm, "live.report", data={"steps": 3, "pause": 0.2})
        frames = await until_finished(comm, task_id)
    updates = [f for f in frames if f["type"] == "task_update"]
    assert [u["progress"] for u in updates] == [33, 67, 100]
    assert [u["data"]["step"] for u in updates] == [1, 2, 3]
    for u in updates:  # the original sends id, its docs say taskId: both
        assert u["taskId"] == u["id"] == task_id
        assert (u["event"], u["queue"]) == ("live.report", "default")
        assert "watched" not in u
        assert "extra" not in u  # the engine's carried fields stay in the worker
    assert frames[-1] == {"type": "task_finished", "taskId": task_id, "event": "live.report",
                          "queue": "default",
                          "status": "completed", "error": None}
    assert await comm.receive_nothing(timeout=3)  # no second task_finished (reconcile: 2 s)
    job = env.get_job(task_id)
    assert job is not None
    assert job.progress == {"data": {"step": 3, "attempt": 1},
                                                "progress": 100}
    record = env.task_manager.conn.sync.hgetall(env.task_manager.keys.queue("default")
                                                .job(task_id))
    assert (record["owner"], record["watch"]) == ("1", "1")  # the emitting user, the flag
    await comm.disconnect()


async def test_bare_emit_of_the_original_is_queued(env: RemqTestEnv) -> None:
    comm = await connect(ADA)
    await comm.send_json_to({"event": "live.report", "data": {"steps": 1}})
    reply = await comm.receive_json_from(timeout=10)
    assert reply["type"] == "queued"
    job = env.get_job(reply["taskId"])
    assert job is not None
    assert job.state.name == "live.report"
    assert job.status == "waiting"
    await comm.disconnect()


async def test_a_failed_attempt_sends_a_retry_notice_then_the_rest(env: RemqTestEnv) -> None:
    comm = await connect(ADA)
    async with worker():
        task_id = await emit_over(comm, "live.report", data={"steps": 2, "fail_first": True})
        frames = await until_finished(comm, task_id)
    kinds = [f["type"] for f in frames]
    assert kinds.count("task_retry") == 1
    assert kinds.count("task_finished") == 1
    retry = frames[kinds.index("task_retry")]
    assert retry["taskId"] == task_id
    assert retry["event"] == "live.report"
    assert retry["error"] == "upstream timed out"
    assert retry["retryCount"] == 1
    assert 0 <= retry["retryDelayMs"] <= 200
    after = [f["data"]["attempt"] for f in frames[kinds.index("task_retry"):]
             if f["type"] == "task_update"]
    assert after
    assert set(after) == {2}
    assert frames[-1]["status"] == "completed"
    await comm.disconnect()


async def test_a_final_failure_is_finished_failed_with_its_error(env: RemqTestEnv) -> None:
    comm = await connect(ADA)
    async with worker():
        task_id = await emit_over(comm, "live.report", data={"steps": 1, "fail": True,
                                                             "pause": 0})
        frames = await until_finished(comm, task_id)
    assert [f["type"] for f in frames].count("task_retry") == 2  # attempts=2: two retries
    assert frames[-1] == {"type": "task_finished", "taskId": task_id, "event": "live.report",
                          "queue": "default",
                          "status": "failed", "error": "bad report"}
    await comm.disconnect()


async def test_bad_frames_get_errors_and_the_connection_stays_usable(redis_url: str) -> None:
    with gateway_env(redis_url, max_message_bytes=300, max_in_flight=2):
        comm = await connect(ADA)
        cases = [
            ("not json", "invalid_json"),
            ("[1, 2]", "invalid_message"),
            (json.dumps({"type": "emit"}), "missing_event"),
            (json.dumps({"type": "emit", "event": ""}), "missing_event"),
            (json.dumps({"event": "no-such-task"}), "not_allowed"),  # not "unknown": no probing
            (json.dumps({"event": "live.report", "queue": "other"}), "unknown_event"),
            (json.dumps({"event": "live.secret"}), "not_allowed"),
            (json.dumps({"type": "dance"}), "unknown_type"),
            (json.dumps({"event": "live.report", "options": {"id": "mine"}}), "invalid_options"),
            (json.dumps({"event": "live.report", "options": {"attempts": "x"}}),
             "invalid_options"),
            (json.dumps({"event": "live.report", "data": "x" * 400}), "too_large"),
            (json.dumps({"type": "subscribe"}), "invalid_message"),
        ]
        for frame, code in cases:
            await comm.send_to(text_data=frame)
            reply = await comm.receive_json_from(timeout=10)
            assert (reply["type"], reply["code"]) == ("error", code), (frame, reply)
            assert isinstance(reply["message"], str)
            assert reply["message"]
        await comm.send_to(bytes_data=b"\xff\xfe")  # a binary frame that is not JSON
        assert (await comm.receive_json_from(timeout=10))["code"] == "invalid_json"
        await emit_over(comm, "live.report")  # still usable
        await emit_over(comm, "live.report")
        await comm.send_json_to({"event": "live.report"})
        reply = await comm.receive_json_from(timeout=10)
        assert reply["code"] == "too_many_in_flight"
        await comm.disconnect()


async def test_anonymous_clients_may_not_emit_by_default(env: RemqTestEnv) -> None:
    comm = await connect(ANON)
    await comm.send_json_to({"event": "live.report"})
    reply = await comm.receive_json_from(timeout=10)
    assert reply["type"] == "error"
    assert reply["code"] == "not_permitted"
    await comm.disconnect()


async def test_allowed_events_replaces_the_exposed_handlers(redis_url: str) -> None:
    with gateway_env(redis_url, allowed_events=["live.secret"]):
        comm = await connect(ADA)
        await emit_over(comm, "live.secret")
        await comm.send_json_to({"event": "live.report"})
        assert (await comm.receive_json_from(timeout=10))["code"] == "not_allowed"
        await comm.disconnect()


async def test_policy_rules_are_dotted_paths(redis_url: str) -> None:
    with gateway_env(redis_url, can_emit="tests.gateway_app.tasks.allow_anyone",
                     can_broadcast="tests.gateway_app.tasks.deny_all"):
        anon = await connect(ANON)
        await emit_over(anon, "live.report")  # allowed by the custom rule
        boss = await connect(BOSS, headers=[(b"x-get-broadcast", b"true")])
        reply = await boss.receive_json_from(timeout=10)
        assert reply["type"] == "error"
        assert reply["code"] == "not_permitted"
        await anon.disconnect()
        await boss.disconnect()


async def test_broadcast_by_header_or_query_reaches_staff(env: RemqTestEnv) -> None:
    by_header = await connect(BOSS, headers=[(b"x-get-broadcast", b"true")])
    by_query = await connect(BOSS, path="/ws/remq/?broadcast=1")
    task_id = emit("live.report", data={"steps": 2, "pause": 0.1})  # not over the gateway
    async with worker():
        for comm in (by_header, by_query):
            frames = await until_finished(comm, task_id)
            assert [f["progress"] for f in frames if f["type"] == "task_update"] == [50, 100]
            assert frames[-1]["status"] == "completed"
    for comm in (by_header, by_query):
        await comm.disconnect()


async def test_broadcast_is_refused_to_non_staff_who_see_nothing_else(
        env: RemqTestEnv) -> None:
    comm = await connect(ADA, headers=[(b"x-get-broadcast", b"true")])
    reply = await comm.receive_json_from(timeout=10)
    assert reply["type"] == "error"
    assert reply["code"] == "not_permitted"
    task_id = emit("live.report", data={"steps": 1, "pause": 0})
    async with worker():
        for _ in range(100):
            job = env.get_job(task_id)
            if job and job.status == "completed":
                break
            await comm.receive_nothing(timeout=0.1)
        assert await comm.receive_nothing(timeout=1.5)  # nothing of another's task
    await emit_over(comm, "live.report")  # the connection still works
    await comm.disconnect()


async def test_default_limits_are_64_kib_frames_and_100_tasks_in_flight(
        env: RemqTestEnv) -> None:
    comm = await connect(ADA)
    frame = json.dumps({"event": "live.report", "data": ""})
    padding = 64 * 1024 - len(frame)
    await comm.send_to(text_data=json.dumps({"event": "live.report", "data": "x" * padding}))
    assert (await comm.receive_json_from(timeout=10))["type"] == "queued"  # exactly 64 KiB
    await comm.send_to(text_data=json.dumps({"event": "live.report",
                                             "data": "x" * (padding + 1)}))
    assert (await comm.receive_json_from(timeout=10))["code"] == "too_large"
    for _ in range(99):
        await emit_over(comm, "live.report")
    await comm.send_json_to({"event": "live.report"})
    assert (await comm.receive_json_from(timeout=10))["code"] == "too_many_in_flight"
    await comm.disconnect()
