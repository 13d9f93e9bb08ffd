"""What a hostile or greedy client costs the gateway, in process (Channels'
WebsocketCommunicator, a real channels-redis layer, a real Redis, the real worker):
refused frames leave nothing behind, nested JSON is refused quietly, a connection's
memory is bounded, one user's tasks in flight are bounded across connections, and a
client's delay is capped. The same against a real daphne: tests/test_hostile_gateway.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_remq.consumers import holds
from django_remq.consumers.gateway import MAX_DONE, TaskGatewayConsumer
from django_remq.consumers.holds import Holds, holder
from django_remq.consumers.keys import GatewayKeys
from django_remq.consumers.protocol import ClientError
from django_remq.core.store import keys
from django_remq.gateway_settings import gateway_problems
from django_remq.testing import RemqTestEnv

from .gateway_helpers import ADA, ANON, BOB, connect, emit_over, gateway_env, until_finished, worker

pytestmark = pytest.mark.redis

ALLOW_ANYONE = "tests.gateway_app.tasks.allow_anyone"


@pytest.fixture
def env(redis_url: str) -> Iterator[RemqTestEnv]:
    with gateway_env(redis_url) as test_env:
        yield test_env


async def reply_of(comm: WebsocketCommunicator, frame: dict[str, Any] | str) -> dict[str, Any]:
    text = frame if isinstance(frame, str) else json.dumps(frame)
    await comm.send_input({"type": "websocket.receive", "text": text})  # "" too
    return dict(await comm.receive_json_from(timeout=10))


def cached() -> tuple[int, int]:
    return len(keys._CHECKED), keys._queue_keys.cache_info().currsize


async def test_a_refused_subscribe_leaves_nothing_behind(env: RemqTestEnv) -> None:
    comm = await connect(ANON)
    before = cached()
    for _ in range(200):  # names of the longest allowed length, each new
        name = uuid.uuid4().hex + "q" * 168
        reply = await reply_of(comm, {"type": "subscribe", "taskId": "t", "queue": name})
        assert reply["code"] == "not_permitted", reply
    for _ in range(20):
        name = uuid.uuid4().hex + "q" * 60_000
        reply = await reply_of(comm, {"type": "subscribe", "taskId": "t", "queue": name})
        assert reply["code"] == "invalid_message", reply
        assert "at most 200" in reply["message"]
        assert len(reply["message"]) < 300  # the name is not echoed back whole
    reply = await reply_of(comm, {"type": "subscribe", "taskId": "t" * 201})
    assert reply["code"] == "invalid_message"
    assert "at most 200" in reply["message"]
    assert cached() == before
    await comm.disconnect()


async def test_deeply_nested_json_is_invalid_json_and_logs_nothing_alarming(
        env: RemqTestEnv, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "django_remq")
    comm = await connect(ADA)
    for frame in ("[" * 30_000, '{"a":' * 12_000, '{"event": "live.report", "data": '
                  + "[" * 100 + "]" * 100 + "}"):
        for _ in range(70):
            reply = await reply_of(comm, frame)
            assert reply["code"] == "invalid_json", reply
            assert "more than 64 deep" in reply["message"]
    await emit_over(comm, "live.report", data={"nested": [[[[[["ok"]]]]]]})  # still usable
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []
    await comm.disconnect()


def test_what_a_connection_remembers_of_finished_tasks_is_bounded() -> None:
    consumer = TaskGatewayConsumer()
    consumer.done, consumer.watching, consumer._background = {}, {}, set()
    for n in range(5 * MAX_DONE):
        consumer._mark_finished(f"task-{n}")
        assert len(consumer.done) <= MAX_DONE
    assert f"task-{5 * MAX_DONE - 1}" in consumer.done  # the newest are kept


async def test_one_users_tasks_in_flight_are_bounded_across_connections_until_they_finish(
        redis_url: str) -> None:
    with gateway_env(redis_url, max_in_flight_per_user=3) as test_env:
        one, two, other = await connect(ADA), await connect(ADA), await connect(BOB)
        ids = [await emit_over(one, "live.report", data={"steps": 1, "pause": 0})
               for _ in range(2)]
        ids.append(await emit_over(two, "live.report", data={"steps": 1, "pause": 0}))
        for comm in (one, two, await connect(ADA)):  # a new connection gets no more
            refused = await reply_of(comm, {"event": "live.report"})
            assert refused["code"] == "too_many_in_flight", refused
            assert "max_in_flight_per_user" in refused["message"]
        await emit_over(other, "live.report")  # another user's count is their own
        tm = test_env.task_manager
        held = tm.conn.sync.zrange(GatewayKeys(tm.keys.prefix).holds("user:1"), 0, -1)
        assert sorted(held) == sorted(f"default:{i}" for i in ids)
        async with worker():
            await until_finished(one, ids[1])
            await until_finished(two, ids[2])
            deadline = time.monotonic() + 10  # released as each task_finished goes out
            while tm.conn.sync.zcard(GatewayKeys(tm.keys.prefix).holds("user:1")) > 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        await emit_over(two, "live.report")
        for comm in (one, two, other):
            await comm.disconnect()


async def test_a_clients_delay_is_capped(redis_url: str) -> None:
    with gateway_env(redis_url, max_client_delay_ms=60_000):
        comm = await connect(ADA)
        soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30))
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600))
        for options, code in (({"delay_ms": 60_001}, "delay_too_long"),
                              ({"retryDelayMs": 10**12}, "delay_too_long"),
                              ({"delayUntil": later}, "delay_too_long"),
                              ({"delay_until": int(time.time() * 1000) + 10**13},
                               "delay_too_long"),
                              ({"delay_ms": 60_000}, None), ({"delayUntil": soon}, None)):
            reply = await reply_of(comm, {"event": "live.report", "options": options})
            assert reply.get("code") == code, (options, reply)
            if code:
                assert "max_client_delay_ms" in reply["message"]
        await comm.disconnect()


async def test_holds_are_checked_against_their_jobs_at_the_limit_and_lapse(
        env: RemqTestEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a crashed gateway leaves: holds nobody releases, ended by the job records
    (at most every PRUNE_EVERY_MS per user) or by their deadline."""
    tm = env.task_manager
    user = Holds(tm, "user:7", limit=2)
    first, second = tm.emit("live.report"), tm.emit("live.report")
    await user.take("default", first)
    await user.take("default", second)
    ttl = tm.conn.sync.pttl(user.key)
    assert 0 < ttl <= holds.HOLD_GRACE_MS  # the key itself expires
    with pytest.raises(ClientError, match="max_in_flight_per_user"):
        await user.take("default", "third")  # both jobs are waiting: both count
    tm.conn.sync.delete(tm.keys.queue("default").job(first))  # the job is gone
    with pytest.raises(ClientError):
        await user.take("default", "third")  # records were read moments ago: not again
    tm.conn.sync.delete(user.keys.holds_pruned("user:7"))  # as if time passed
    await user.take("default", "third")
    assert tm.conn.sync.zcard(user.key) == 2
    await user.release("default", second)
    await user.release("default", "third")
    assert tm.conn.sync.zcard(user.key) == 0
    monkeypatch.setattr(holds, "HOLD_GRACE_MS", 100)
    await user.take("default", "fourth")
    await user.take("default", "fifth")
    await asyncio.sleep(0.2)
    await user.take("default", "sixth")  # the lapsed holds no longer count
    assert tm.conn.sync.zrange(user.key, 0, -1) == ["default:sixth"]


def test_holder_is_the_user_or_else_the_address() -> None:
    assert holder({"user": ADA}) == "user:1"
    assert holder({"user": ANON, "client": ["10.1.2.3", 5000]}) == "addr:10.1.2.3"
    assert holder({}) == "addr:unknown"


@pytest.mark.parametrize(("gateway", "text"), [
    ({"max_in_flight_per_user": 0}, "'max_in_flight_per_user'] must be an int >= 1"),
    ({"max_client_delay_ms": -1}, "'max_client_delay_ms'] must be an int >= 0"),
    ({"max_client_delay_ms": True}, "'max_client_delay_ms'] must be an int >= 0"),
    ({"allowed_origins": "https://a.example"}, "must be a list of origins"),
    ({"allowed_origins": ["https://a.example/app"]}, "is not an origin"),
    ({"allowed_origins": ["a.example"]}, "is not an origin"),
    ({"allowed_origin": []}, "Did you mean 'allowed_origins'"),
])
def test_gateway_limits_and_origins_are_validated(gateway: dict[str, Any], text: str) -> None:
    found = [f"{p.msg} {p.hint}" for p in gateway_problems(gateway, import_paths=False)]
    assert any(text in problem for problem in found), found


def test_valid_limits_and_origins_pass() -> None:
    assert gateway_problems({"max_in_flight_per_user": 1, "max_client_delay_ms": 0,
                             "allowed_origins": ["https://a.example", "http://b:8000", "*"]},
                            import_paths=False) == []


frame_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats()
    | st.text(max_size=20), lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
frames = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["emit", "subscribe", "unsubscribe"]) | frame_values,
    "event": st.sampled_from(["live.report", "live.secret", "nope"]) | frame_values,
    "queue": st.sampled_from(["default", "a:b", "x" * 201]) | frame_values,
    "taskId": st.text(max_size=210) | frame_values,
    "data": frame_values,
    "options": st.dictionaries(st.sampled_from(
        ["delay_ms", "delayUntil", "retryCount", "priority", "id", "attempts", "timeout_ms",
         "bogus"]), frame_values | st.integers(-10**20, 10**20), max_size=3) | frame_values,
}).map(lambda f: json.dumps(f, allow_nan=True)) | st.text(max_size=80) | st.sampled_from(
    ["[" * 5000, "[NaN]", '{"event": "live.report", "data": 1e999}', '"\\udc00"'])


def test_any_frame_gets_an_answer_or_a_clear_refusal_from_a_real_connection(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Hypothesis sends frames to one live connection (allowed to emit and follow
    anything): each is answered, never ``unavailable``, and nothing is logged as an
    error."""
    caplog.set_level(logging.WARNING, "django_remq")
    with gateway_env(redis_url, can_emit=ALLOW_ANYONE, can_subscribe=ALLOW_ANYONE), \
            asyncio.Runner() as runner:
        comm = runner.run(connect(ADA))

        @settings(max_examples=150, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(frames)
        def answered(frame: str) -> None:
            reply = runner.run(reply_of(comm, frame))
            assert reply["type"] in ("queued", "subscribed", "unsubscribed", "error"), reply
            assert reply.get("code") != "unavailable", (frame, reply)
            if reply["type"] == "subscribed" and reply["status"] in ("completed", "failed"):
                runner.run(comm.receive_json_from(timeout=10))  # its task_finished

        answered()
        runner.run(comm.disconnect())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_frames_over_the_rate_are_dropped_with_one_notice_then_the_client_closed(
        redis_url: str) -> None:
    """GATEWAY['max_frames_per_second']: a second's worth at once is answered, the rest
    dropped unread (one ``rate_limited``); a client that never slows down is closed
    (4029); one that waits for the bucket to fill is served again."""
    from django_remq.consumers.rate import CLOSE_AFTER_S, TOO_MANY_FRAMES

    rate = 5
    bad = json.dumps({"type": "subscribe"})  # each answered when read: invalid_message
    with gateway_env(redis_url, max_frames_per_second=rate):
        calm = await connect(ANON)
        for _ in range(rate + 3):
            await calm.send_to(text_data=bad)
        codes = [(await calm.receive_json_from(timeout=10))["code"] for _ in range(rate + 1)]
        assert await calm.receive_nothing(timeout=0.3)
        await asyncio.sleep(1.1)  # the bucket fills again
        await calm.send_to(text_data=bad)
        assert (await calm.receive_json_from(timeout=10))["code"] == "invalid_message"
        await calm.disconnect()

        flood = await connect(ANON)
        for _ in range(rate * (CLOSE_AFTER_S + 2)):
            await flood.send_to(text_data=bad)
        out = [await flood.receive_output(timeout=10) for _ in range(rate + 2)]
        await flood.disconnect()
    assert codes == ["invalid_message"] * rate + ["rate_limited"]
    assert [json.loads(o["text"])["code"] for o in out[:-1]] == (
        ["invalid_message"] * rate + ["rate_limited"])
    assert out[-1] == {"type": "websocket.close", "code": TOO_MANY_FRAMES}
