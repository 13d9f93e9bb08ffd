"""Shared set-up of the gateway tests: a real channels-redis layer and REMQ on fresh
prefixes, the test handlers declared, users of each kind, and an in-process worker; and
the end-to-end stack of real processes (daphne, ``runworker_remq``) with a staff session."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
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

from .workers import ROOT

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
    """REMQ with ``GATEWAY=gateway`` and a channels-redis layer, both on fresh prefixes."""
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


def wait_for_port(port: int, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited: {proc.communicate()[0]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}")


class Stack:
    """Environment, database and processes of one end-to-end run."""

    def __init__(self, redis_url: str, tmp: Path) -> None:
        self.prefix = f"remqtest-{uuid.uuid4().hex[:10]}"
        self.layer_prefix = f"asgi-{self.prefix}"
        self.redis_url = redis_url
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.django_settings_gateway",
                    "REMQ_REDIS_URL": redis_url, "REMQ_TEST_PREFIX": self.prefix,
                    "REMQ_TEST_LAYER_PREFIX": self.layer_prefix,
                    "REMQ_TEST_DB": str(tmp / "db.sqlite3"), "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": str(ROOT)}
        self.procs: list[subprocess.Popen[str]] = []
        self.session = self._staff_session()

    def _staff_session(self) -> str:
        """A signed-in staff user's session key (the cookie a browser would send)."""
        subprocess.run([sys.executable, "-m", "django", "migrate", "-v", "0"], env=self.env,
                       cwd=ROOT, check=True, timeout=120)
        script = ("from django.contrib.auth import get_user_model, SESSION_KEY, "
                  "BACKEND_SESSION_KEY, HASH_SESSION_KEY\n"
                  "from django.contrib.sessions.backends.db import SessionStore\n"
                  "u = get_user_model().objects.create_user('boss', password='x', is_staff=True)\n"
                  "s = SessionStore()\ns[SESSION_KEY] = str(u.pk)\n"
                  "s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
                  "s[HASH_SESSION_KEY] = u.get_session_auth_hash()\ns.create()\n"
                  "print(s.session_key)")
        out = subprocess.run([sys.executable, "-m", "django", "shell", "-c", script],
                             env=self.env, cwd=ROOT, check=True, capture_output=True, text=True,
                             timeout=120)
        return out.stdout.strip().splitlines()[-1]

    def start(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", *args], env=self.env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        client = redis.Redis.from_url(self.redis_url)
        for pattern in (f"{self.prefix}:*", f"{self.layer_prefix}*"):
            keys = list(client.scan_iter(pattern, count=1000))
            if keys:
                client.delete(*keys)
        client.close()

    def headers(self, port: int, **extra: str) -> dict[str, str]:
        return {"Cookie": f"sessionid={self.session}", "Origin": f"http://127.0.0.1:{port}",
                **extra}
