"""The gateway end to end, with real processes: the ASGI app under daphne, a
``runworker_remq`` worker, and a real WebSocket client (the websockets package)
sending ``x-get-broadcast: true`` as the original's clients do; then the same
through ``runworker_remq --expose PORT`` alone."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(redis_url, tmp_path)
    yield s
    s.stop()


async def watch_a_report(url: str, stack: Stack, port: int) -> list[dict[str, Any]]:
    """A broadcast connection's frames for one task another connection emits."""
    async with connect(url, additional_headers=stack.headers(port, **{
            "x-get-broadcast": "true"})) as watcher, \
            connect(url, additional_headers=stack.headers(port)) as emitter:
        await asyncio.sleep(1.5)  # workers re-read the broadcast registry every second
        await emitter.send(json.dumps({"event": "live.report", "data": {
            "steps": 4, "pause": 0.1, "fail_first": True}}))
        queued = json.loads(await asyncio.wait_for(emitter.recv(), 20))
        assert queued["type"] == "queued"
        task_id = queued["taskId"]
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while not any(f["type"] == "task_finished" for f in frames):
            frame = json.loads(await asyncio.wait_for(watcher.recv(), deadline - time.monotonic()))
            if frame.get("taskId") == task_id:
                frames.append(frame)
        try:  # anything more for this task (a second task_finished) would show up here
            while True:
                frame = json.loads(await asyncio.wait_for(watcher.recv(), 3))
                if frame.get("taskId") == task_id:
                    frames.append(frame)
        except TimeoutError:
            pass
        return frames


def assert_report_frames(frames: list[dict[str, Any]]) -> None:
    kinds = [f["type"] for f in frames]
    assert kinds.count("task_finished") == 1
    assert kinds[-1] == "task_finished"
    assert frames[-1]["status"] == "completed"
    assert kinds.count("task_retry") == 1
    retry_at = kinds.index("task_retry")
    assert frames[retry_at]["error"] == "upstream timed out"
    for attempt, part in ((1, frames[:retry_at]), (2, frames[retry_at:])):
        updates = [f for f in part if f["type"] == "task_update"]
        assert [u["progress"] for u in updates] == [25, 50, 75, 100]
        assert {u["data"]["attempt"] for u in updates} == {attempt}
        assert all(u["id"] == u["taskId"] for u in updates)


def test_daphne_and_a_worker_process_deliver_in_order_to_a_broadcast_client(
        stack: Stack) -> None:
    port = free_port()
    daphne = stack.start("daphne", "-b", "127.0.0.1", "-p", str(port),
                         "tests.gateway_asgi:application")
    stack.start("django", "runworker_remq", "--concurrency", "2")
    wait_for_port(port, daphne)
    frames = asyncio.run(watch_a_report(f"ws://127.0.0.1:{port}/ws/remq/", stack, port))
    assert_report_frames(frames)


def test_runworker_expose_serves_the_same_gateway_at_the_root(stack: Stack) -> None:
    port = free_port()
    worker = stack.start("django", "runworker_remq", "--expose", str(port))
    wait_for_port(port, worker)
    frames = asyncio.run(watch_a_report(f"ws://127.0.0.1:{port}/", stack, port))
    assert_report_frames(frames)
