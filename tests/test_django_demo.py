"""``python example_project/manage.py remq_demo``: starts, serves the page, runs tasks."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from .workers import free_port

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parent.parent


class Demo:
    def __init__(self, redis_url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # a prefix and a database of its own: other tests run demos on the same Redis
        self.prefix = f"remq-demo-{uuid.uuid4().hex[:8]}"
        environ = {**os.environ, "REMQ_REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1",
                   "PYTHONPATH": str(ROOT), "REMQ_DEMO_PREFIX": self.prefix,
                   "REMQ_DEMO_DB": os.path.join(tempfile.mkdtemp(), "demo.sqlite3")}
        environ.pop("DJANGO_SETTINGS_MODULE", None)
        self.proc = subprocess.Popen(
            [sys.executable, "example_project/manage.py", "remq_demo", f"127.0.0.1:{self.port}"],
            cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: str | None = None
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str = "/") -> str:
        with self.opener.open(self.base + path, timeout=5) as resp:
            assert resp.status == 200
            return str(resp.read().decode())

    def wait_until_serving(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()[0]
            try:
                return self.get()
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise AssertionError("the demo never served its page")

    def emit(self, event: str) -> None:
        page = self.get()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, page
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1)}).encode()
        request = urllib.request.Request(self.base + f"/emit/{event}/", data=body,
                                         headers={"Referer": self.base + "/"})
        with self.opener.open(request, timeout=5) as resp:  # follows the redirect
            assert resp.status == 200

    def stop(self) -> str:
        if self.output is not None:
            return self.output
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.output = str(self.proc.communicate()[0])
        return self.output


@pytest.fixture
def demo_without_redis() -> Iterator[Demo]:
    demo = Demo("redis://127.0.0.1:1/0")  # nothing listens there: the demo embeds fakeredis
    yield demo
    demo.stop()


def test_demo_without_redis_embeds_fakeredis_and_runs_tasks(demo_without_redis: Demo) -> None:
    demo = demo_without_redis
    page = demo.wait_until_serving()
    assert "django_remq demo" in page
    assert "No jobs yet" in page
    demo.emit("fetch-weather")
    deadline = time.monotonic() + 15
    while "Lyon" not in (page := demo.get()):
        assert time.monotonic() < deadline, page
        time.sleep(0.2)
    assert re.search(r"fetch-weather</td>.*?class=\"completed\"", page, re.S)
    out = demo.stop()
    assert "No Redis answered at redis://127.0.0.1:1/0" in out
    assert "started an in-process fakeredis server" in out
    assert f"Open http://127.0.0.1:{demo.port}/" in out
    assert "default: generate-report -> demo.tasks.generate_report" in out


def test_demo_uses_a_real_redis_when_one_answers(redis_url: str) -> None:
    demo = Demo(redis_url)
    try:
        assert "django_remq demo" in demo.wait_until_serving()
    finally:
        out = demo.stop()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{demo.prefix}*"))
        if keys:
            client.delete(*keys)
    assert f"Using the real Redis server at {redis_url}" in out
    assert "fakeredis" not in out
