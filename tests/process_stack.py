"""The end-to-end stack of real processes (daphne, ``runworker_remq``) on a fresh prefix,
with a signed-in staff session, and its ``stack`` fixture (a pytest plugin of
``tests/conftest.py``, for the gateway and admin tests that run real processes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from .workers import ROOT


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
    """A :class:`Stack` whose processes are stopped and keys deleted after the test."""
    s = Stack(redis_url, tmp_path)
    yield s
    s.stop()
