"""Shared set-up of the gateway tests: a real channels-redis layer and REMQ on fresh
prefixes, the test handlers declared, users of each kind, and an in-process worker (the
end-to-end stack of real processes is in :mod:`tests.process_stack`)."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import redis
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User
from django.test import override_settings

from django_remq.api import build_task_manager
from django_remq.core import TaskManager
from django_remq.decorators import Declaration, registry
from django_remq.testing import RemqTestEnv, remq_test_settings

ADA = User(pk=1, username="ada")
BOB = User(pk=2, username="bob")
BOSS = User(pk=3, username="boss", is_staff=True)
ANON = AnonymousUser()

_declared: list[Declaration] = []


def declare_test_handlers() -> list[Declaration]:
    """The handlers of tests/gateway_app/tasks.py, declared again if a test removed them."""
    if not _declared:
        importlib.import_module("tests.gateway_app.tasks")
        _declared.extend(d for d in registry if d.event.startswith("live."))
    for decl in _declared:
        registry.add(decl)
    return _declared


def layer_settings(hosts: list[str], prefix: str, **config: Any) -> dict[str, Any]:
    return {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                        "CONFIG": {"hosts": hosts, "prefix": prefix, **config}}}


@contextmanager
def gateway_env(redis_url: str, *, layer_hosts: list[str] | None = None,
                **gateway: Any) -> Iterator[RemqTestEnv]:
    """REMQ with ``GATEWAY=gateway`` and a channels-redis layer, both on fresh prefixes.
    Tests send frames faster than a person would: the frame rate is unlimited unless a
    test sets ``max_frames_per_second`` itself."""
    gateway.setdefault("max_frames_per_second", 1_000_000)
    decls = declare_test_handlers()
    layer_prefix = f"asgi-{uuid.uuid4().hex[:10]}"
    try:
        with override_settings(CHANNEL_LAYERS=layer_settings(layer_hosts or [redis_url],
                                                             layer_prefix)), \
                remq_test_settings(redis_url, GATEWAY=gateway) as env:
            yield env
    finally:
        for decl in decls:
            registry.remove(decl.queue, decl.event)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{layer_prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def app_for(user: Any) -> Callable[..., Any]:
    """The gateway's routes with ``scope['user']`` set, as AuthMiddlewareStack would."""
    from django_remq.routing import websocket_urlpatterns

    router = URLRouter(websocket_urlpatterns)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        return await router({**scope, "user": user}, receive, send)

    return app


async def connect(user: Any, path: str = "/ws/remq/",
                  headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(app_for(user), path, headers=headers or [])
    connected, _ = await comm.connect(timeout=10)
    assert connected
    return comm


async def until_finished(comm: WebsocketCommunicator, task_id: str,
                         timeout: float = 20) -> list[dict[str, Any]]:
    """Frames up to and including the task_finished of ``task_id``."""
    frames = []
    while True:
        frame = await comm.receive_json_from(timeout=timeout)
        frames.append(frame)
        if frame["type"] == "task_finished" and frame["taskId"] == task_id:
            return frames


async def emit_over(comm: WebsocketCommunicator, event: str, **fields: Any) -> str:
    await comm.send_json_to({"type": "emit", "event": event, **fields})
    reply = await comm.receive_json_from(timeout=10)
    assert reply["type"] == "queued", reply
    return str(reply["taskId"])


@asynccontextmanager
async def worker() -> AsyncIterator[TaskManager]:
    """A worker in this loop, built like ``runworker_remq`` builds its own."""
    tm = build_task_manager()
    await tm.start()
    try:
        yield tm
    finally:
        await tm.stop()
        await tm.conn.aclose()
