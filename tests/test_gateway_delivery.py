"""Following tasks (subscribe), the worker side of delivery (bursts, nobody listening,
a channel layer that is down), the Origin check and the GATEWAY settings checks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.testing import WebsocketCommunicator
from django.core.checks import run_checks
from django.test import override_settings

from django_remq import emit
from django_remq.conf import problems
from django_remq.consumers.delivery import ChannelLayerSink
from django_remq.consumers.keys import GatewayKeys
from django_remq.decorators import declare
from django_remq.errors import ImproperlyConfiguredRemq
from django_remq.testing import RemqTestEnv

from .gateway_helpers import ADA, BOB, BOSS, connect, emit_over, gateway_env, until_finished, worker

pytestmark = pytest.mark.redis


@pytest.fixture
def env(redis_url: str) -> Iterator[RemqTestEnv]:
    with gateway_env(redis_url) as test_env:
        yield test_env


async def reply_of(comm: WebsocketCommunicator, frame: dict[str, Any]) -> dict[str, Any]:
    await comm.send_json_to(frame)
    return dict(await comm.receive_json_from(timeout=10))


async def test_subscribe_follows_own_tasks_staff_any_and_starts_with_the_state(
        env: RemqTestEnv) -> None:
    ada = await connect(ADA)
    task_id = await emit_over(ada, "live.report", data={"steps": 2, "pause": 0.2})
    await ada.disconnect()  # a reloaded page: a new connection resumes by subscribing
    bob, boss, ada2 = await connect(BOB), await connect(BOSS), await connect(ADA)
    assert (await reply_of(bob, {"type": "subscribe", "taskId": task_id}))["code"] == \
        "not_permitted"  # another user's task
    assert (await reply_of(bob, {"type": "subscribe", "taskId": "nope"}))["code"] == \
        "not_permitted"  # existence is not revealed either
    assert (await reply_of(boss, {"type": "subscribe", "taskId": "nope"}))["code"] == "not_found"
    for comm in (ada2, boss):
        assert await reply_of(comm, {"type": "subscribe", "taskId": task_id}) == {
            "type": "subscribed", "taskId": task_id, "queue": "default", "status": "waiting",
            "progress": None, "data": None}
    async with worker():
        for comm in (ada2, boss):
            frames = await until_finished(comm, task_id)
            assert [f["progress"] for f in frames if f["type"] == "task_update"] == [50, 100]
    again = await reply_of(boss, {"type": "subscribe", "taskId": task_id})
    assert (again["status"], again["progress"], again["data"]) == (
        "completed", 100, {"step": 2, "attempt": 1})
    finished = await boss.receive_json_from(timeout=10)  # a finished task: its end at once
    assert finished["type"] == "task_finished"
    assert finished["status"] == "completed"
    for comm in (bob, boss, ada2):
        await comm.disconnect()


async def test_subscribing_to_a_running_task_gets_its_later_events(env: RemqTestEnv) -> None:
    task_id = emit("live.report", data={"steps": 6, "pause": 0.5})  # not over the gateway
    boss = await connect(BOSS)
    async with worker():
        while (job := env.get_job(task_id)) is None or job.progress is None:
            await asyncio.sleep(0.05)
        reply = await reply_of(boss, {"type": "subscribe", "taskId": task_id})
        assert reply["status"] == "processing"
        assert reply["progress"] >= 17
        frames = await until_finished(boss, task_id)
    progress = [f["progress"] for f in frames if f["type"] == "task_update"]
    assert progress[-1] == 100
    assert progress == sorted(set(progress))
    await boss.disconnect()


async def test_unsubscribe_stops_the_events(env: RemqTestEnv) -> None:
    task_id = emit("live.report", data={"steps": 2, "pause": 0})
    boss = await connect(BOSS)
    assert (await reply_of(boss, {"type": "subscribe", "taskId": task_id}))["type"] == \
        "subscribed"
    assert await reply_of(boss, {"type": "unsubscribe", "taskId": task_id}) == {
        "type": "unsubscribed", "taskId": task_id}
    async with worker():
        while (job := env.get_job(task_id)) is None or job.status != "completed":
            await asyncio.sleep(0.05)
        assert await boss.receive_nothing(timeout=3)
    await boss.disconnect()


async def test_a_burst_of_1000_updates_is_coalesced_in_order_and_finished_arrives(
        env: RemqTestEnv) -> None:
    """channels-redis drops messages over a channel's capacity (default 100, left so
    here): the worker coalesces queued updates to the latest, so the burst arrives as
    an increasing run of updates ending at the last, then task_finished."""
    comm = await connect(ADA)
    async with worker() as tm:
        task_id = await emit_over(comm, "live.burst", data={"n": 1000})
        frames = await until_finished(comm, task_id)
        sink = tm.expose
        assert isinstance(sink, ChannelLayerSink)
        assert sink.coalesced > 0
        assert sink.dropped == 0
    progress = [f["progress"] for f in frames if f["type"] == "task_update"]
    assert 1 <= len(progress) < 1000
    assert progress == sorted(set(progress))
    assert progress[-1] == 1000
    assert frames[-1]["type"] == "task_finished"
    assert frames[-1]["status"] == "completed"
    assert sum(f["type"] == "task_finished" for f in frames) == 1
    await comm.disconnect()


async def test_nobody_listening_costs_no_message(env: RemqTestEnv) -> None:
    ids = [emit("live.report", data={"steps": 2, "pause": 0}) for _ in range(20)]
    async with worker() as tm:
        while any((j := env.get_job(i)) is None or j.status != "completed" for i in ids):
            await asyncio.sleep(0.05)
        sink = tm.expose
        assert isinstance(sink, ChannelLayerSink)
        assert sink.loaded
        assert sink.sent == 0
        assert sink.dropped == 0
        assert not sink._pending  # dropped on the spot, never queued


async def test_a_channel_layer_that_is_down_never_blocks_or_fails_the_task(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with gateway_env(redis_url, layer_hosts=["redis://127.0.0.1:1/0"]) as test_env:
        keys = GatewayKeys(test_env.task_manager.keys.prefix)
        far = int(time.time() * 1000) + 60_000  # as if a broadcast connection were open
        test_env.task_manager.conn.sync.zadd(keys.broadcast, {"someone": far})
        caplog.set_level(logging.WARNING, "django_remq.gateway")
        task_id = emit("live.report", data={"steps": 8, "pause": 0.05})
        started = time.monotonic()
        async with worker():
            while (job := test_env.get_job(task_id)) is None or job.status != "completed":
                assert time.monotonic() - started < 30
                await asyncio.sleep(0.05)
        assert job.progress == {"data": {"step": 8, "attempt": 1}, "progress": 100}
        warnings = [r for r in caplog.records if "not sent" in r.getMessage()]
        assert len(warnings) == 1  # rate-limited: 9 events, one line


async def test_origin_is_checked(env: RemqTestEnv) -> None:
    from django_remq.routing import websocket_urlpatterns

    with override_settings(ALLOWED_HOSTS=["testserver"]):
        app = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        for origin, ok in ((b"http://evil.example", False), (b"http://testserver", True)):
            comm = WebsocketCommunicator(app, "/ws/remq/", headers=[(b"origin", origin)])
            connected, _ = await comm.connect(timeout=10)
            assert connected is ok, origin
            await comm.disconnect()


def test_expose_on_handler_is_validated() -> None:
    with pytest.raises(ImproperlyConfiguredRemq, match="expose must be True or False"):
        declare("x.exposed", lambda task, ctx: None, expose="yes")


@pytest.mark.parametrize(("gateway", "code", "text"), [
    ("yes", "remq.E003", "must be dict or None"),
    ({"allowed_event": []}, "remq.E020", "Did you mean 'allowed_events'"),
    ({"allowed_events": "report"}, "remq.E021", "list of event names"),
    ({"max_in_flight": 0}, "remq.E021", "'max_in_flight'] must be an int >= 1"),
    ({"max_message_bytes": True}, "remq.E021", "max_message_bytes"),
    ({"max_connections": None}, "remq.E021", "'max_connections'] must be an int >= 1, got"),
    ({"max_connections_per_address": 0}, "remq.E021", "must be an int >= 1 or None, got 0"),
    ({"can_emit": 3}, "remq.E022", "dotted path"),
    ({"can_broadcast": "tests.nowhere.rule"}, "remq.E022", "not an importable callable"),
])
def test_gateway_settings_are_checked(gateway: Any, code: str, text: str) -> None:
    found = problems({"GATEWAY": gateway})
    assert [p.id for p in found] == [code]
    assert text in found[0].msg + (found[0].hint or "")


def test_the_connection_caps_take_an_int_and_the_per_address_one_none() -> None:
    assert problems({"GATEWAY": {"max_connections": 5, "max_connections_per_address": None}}) == []
    assert problems({"GATEWAY": {"max_connections_per_address": 2}}) == []


def test_check_warns_when_gateway_has_no_channel_layer() -> None:
    with override_settings(REMQ={"GATEWAY": {}}, CHANNEL_LAYERS={}):
        warnings = [m for m in run_checks(tags=["remq"]) if m.id == "remq.W020"]
        assert len(warnings) == 1
        assert "CHANNEL_LAYERS" in (warnings[0].hint or "")
    layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with override_settings(REMQ={"GATEWAY": {}}, CHANNEL_LAYERS=layers):
        assert not [m for m in run_checks(tags=["remq"]) if m.id == "remq.W020"]


async def test_expose_port_needs_a_server_and_a_real_port(redis_url: str) -> None:
    """The engine serves nothing on a port by itself: a bare port is refused at start,
    whatever the process has imported; the gateway is the server the Django layer brings."""
    from django_remq.consumers import gateway_server
    from django_remq.core import TaskManager
    from django_remq.core.errors import InvalidOptions

    for port in (70_000, 0, True, "4000"):
        with pytest.raises(InvalidOptions, match="TCP port"):
            TaskManager.init(db=redis_url, expose=gateway_server(port))  # type: ignore[arg-type]
    with pytest.raises(InvalidOptions, match="TCP port"):
        TaskManager.init(db=redis_url, expose=70_000)
    tm = TaskManager.init(db=redis_url, expose=4000, prefix="remqtest-nohook")
    with pytest.raises(InvalidOptions, match="serves nothing on a port by itself"):
        await tm.start()
    assert tm.processor is None  # nothing left running
    tm.conn.close()


def test_runworker_refuses_a_bad_expose_port() -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--expose must be a TCP port"):
        call_command("runworker_remq", "--expose", "0")


async def test_a_channel_layer_that_hangs_never_blocks_the_task(
        redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A server that accepts connections and never answers: sends time out, tasks go on."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    try:
        with gateway_env(redis_url, layer_hosts=[f"redis://127.0.0.1:{port}/0"]) as test_env:
            keys = GatewayKeys(test_env.task_manager.keys.prefix)
            far = int(time.time() * 1000) + 60_000
            test_env.task_manager.conn.sync.zadd(keys.broadcast, {"someone": far})
            caplog.set_level(logging.WARNING, "django_remq.gateway")
            ids = [emit("live.report", data={"steps": 3, "pause": 0}) for _ in range(5)]
            started = time.monotonic()
            async with worker():
                while any((j := test_env.get_job(i)) is None or j.status != "completed"
                          for i in ids):
                    await asyncio.sleep(0.05)
                took = time.monotonic() - started
            assert took < 10  # the 2 s send timeout is the sender's, never the task's
            assert any("TimeoutError" in r.getMessage() for r in caplog.records)
    finally:
        silent.close()


async def test_expose_server_checks_origin_but_lets_non_browser_clients_in(
        env: RemqTestEnv) -> None:
    """The --expose server: a page of another site is refused; a client that sends no
    Origin (the original's Node/Deno clients) connects, and the policy still applies."""
    import json
    import socket

    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed

    from django_remq.consumers.expose import serve

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with override_settings(ALLOWED_HOSTS=["127.0.0.1"]):
        close = await serve(port, host="127.0.0.1")
    try:
        async with ws_connect(f"ws://127.0.0.1:{port}/",
                              additional_headers={"Origin": "http://evil.example"}) as evil:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(evil.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4003
        async with ws_connect(f"ws://127.0.0.1:{port}/") as client:  # no Origin, no session
            await client.send(json.dumps({"event": "live.report"}))
            reply = json.loads(await asyncio.wait_for(client.recv(), 10))
            assert (reply["type"], reply["code"]) == ("error", "not_permitted")
    finally:
        await close()
