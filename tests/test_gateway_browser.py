"""The example project's live pages in a real browser (Playwright driving Debian's
chromium): a signed-in user generates a report and watches it to 100 % with a retry
notice; staff watch every task on the live feed (a broadcast connection).

``REMQ_SAVE_SCREENSHOTS=1`` writes the screenshots the README shows
(docs/screenshots/live-progress.png, live-feed.png)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from playwright import sync_api

from .workers import free_port

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
#: REMQ_SAVE_SCREENSHOTS=1 refreshes the README's screenshots (else they go to tmp_path)
SAVE_SHOTS = os.environ.get("REMQ_SAVE_SCREENSHOTS") == "1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]




@pytest.fixture
def demo(redis_url: str, tmp_path: Path) -> Iterator[str]:
    """``manage.py remq_demo`` (worker + daphne) on the test Redis; yields its base URL."""
    port = free_port()
    prefix = f"remq-demo-{uuid.uuid4().hex[:8]}"  # its own: other tests run demos too
    env = {**os.environ, "REMQ_REDIS_URL": redis_url, "REMQ_DEMO_DB": str(tmp_path / "db"),
           "REMQ_DEMO_PREFIX": prefix, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.Popen([sys.executable, "example_project/manage.py", "remq_demo",
                             f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the demo never served"
            try:
                urllib.request.urlopen(base + "/login/", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def sign_in(browser: object, base: str, user: str, path: str) -> object:
    page = browser.new_page(viewport={"width": 900, "height": 640})  # type: ignore[attr-defined]
    page.goto(base + path)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", user)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(base + path) + "$"))
    return page


def test_live_report_fills_to_100_with_a_retry_notice_and_staff_see_it_on_the_feed(
        demo: str, tmp_path: Path) -> None:
    shots = ROOT / "docs" / "screenshots" if SAVE_SHOTS else tmp_path
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            feed = sign_in(browser, demo, "admin", "/live/feed/")
            feed.wait_for_selector("#status:has-text('connected')")  # type: ignore[attr-defined]
            page = sign_in(browser, demo, "demo", "/live/")
            page.wait_for_selector("#generate:enabled")  # type: ignore[attr-defined]
            time.sleep(1.5)  # workers re-read the broadcast registry every second
            page.click("#generate")  # type: ignore[attr-defined]
            page.wait_for_selector("#notice:has-text('Retrying')",  # type: ignore[attr-defined]
                                   timeout=30_000)
            page.wait_for_selector("#state.completed", timeout=60_000)  # type: ignore[attr-defined]
            assert page.inner_text("#percent") == "100%"  # type: ignore[attr-defined]
            assert page.eval_on_selector(  # type: ignore[attr-defined]
                "#fill", "e => e.style.width") == "100%"
            assert "the report service timed out" in page.inner_text(  # type: ignore[attr-defined]
                "#notice")
            assert page.inner_text("#step") == "report ready"  # type: ignore[attr-defined]
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "live-progress.png"))  # type: ignore[attr-defined]
            feed.wait_for_selector("tr.task_finished", timeout=10_000)  # type: ignore[attr-defined]
            rows = feed.inner_text("#rows")  # type: ignore[attr-defined]
            assert "generate-report" in rows
            assert "task_retry" in rows
            assert "completed" in rows
            feed.screenshot(path=str(shots / "live-feed.png"))  # type: ignore[attr-defined]
            page.click("#generate")  # type: ignore[attr-defined]  # again, and reload mid-way:
            page.wait_for_selector("#percent:has-text('25%')")  # type: ignore[attr-defined]
            page.reload()  # type: ignore[attr-defined]  # the page subscribes and resumes
            page.wait_for_selector("#state.completed", timeout=60_000)  # type: ignore[attr-defined]
            assert page.inner_text("#percent") == "100%"  # type: ignore[attr-defined]
            assert "subscribed" in page.inner_text("#log")  # type: ignore[attr-defined]
            denied = sign_in(browser, demo, "demo", "/live/")  # a non-staff user...
            denied.goto(demo + "/live/feed/")  # type: ignore[attr-defined]
            assert "/login/" in denied.url  # type: ignore[attr-defined]  # ...has no feed
        finally:
            browser.close()
