"""Durations and trend charts in a real browser (Playwright on Debian's chromium) against a
live server and a real worker: the queues page's chart drawn from finish.lua's counters,
a running job's run time moving on by the live refresh, no reload, then its final figure.
Saves the queues page with its chart (light, dark, phone): ``REMQ_SCREENSHOTS=docs/screenshots``
refreshes the documentation's images."""

from __future__ import annotations

import asyncio
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk
from django_remq.core.sdk.metrics import HOUR, MINUTE, TREND_HOURS
from django_remq.core.store.keys import Keys

from .admin_support import PROCESSOR, remq_at, worker_thread
from .test_admin_browser import browser, log_in, staff, wait_for  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def seed_history(r: Any, prefix: str, queue: str, now_ms: int) -> int:
    """Three hours of counters before this minute, as finish.lua writes them (a real worker
    fills only the current minute in a test's time); returns the minutes with a bar."""
    qk = Keys(prefix).queue(queue)
    now = now_ms // MINUTE
    busy = 0
    for m in range(now - 179, now):
        done = (m * 7) % 23 if m % 9 else 0
        failed = 3 if m % 31 == 0 else 0
        if not (done or failed):
            continue
        busy += 1
        hour = m * MINUTE // HOUR
        r.hset(qk.trend(hour), mapping={f"{m % 60}:completed": done, f"{m % 60}:failed": failed,
                                        f"{m % 60}:h4": done + failed,
                                        f"{m % 60}:run_ms": 40 * (done + failed)})
        r.pexpireat(qk.trend(hour), (hour + 1 + TREND_HOURS) * HOUR)
    return busy


def test_chart_and_live_durations(staff, live_server, browser, redis_url, prefix, r,  # noqa: F811
                                  tmp_path):
    out = Path(os.environ.get("REMQ_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    release = threading.Event()

    async def export(task: Any, ctx: Any) -> None:
        while not release.is_set():
            await asyncio.sleep(0.05)

    async def quick(task: Any, ctx: Any) -> None:
        await asyncio.sleep(0.02)

    async def declined(task: Any, ctx: Any) -> None:
        raise ValueError("card declined")

    tm = TaskManager.init(db=redis_url, prefix=prefix, concurrency=4,  # type: ignore[arg-type]
                          processor=PROCESSOR)
    tm.register_handler("export-orders", export, queue="reports")
    tm.register_handler("send-receipt", quick, queue="emails")
    tm.register_handler("charge-card", declined, queue="payments", options={"attempts": 0})
    sdk = Sdk(redis_url, prefix=prefix)
    with remq_at(redis_url, prefix), worker_thread(tm):
        for i in range(8):
            tm.emit("send-receipt", queue="emails", data={"order": i})
        tm.emit("charge-card", queue="payments", data={"order": 9})
        wait_for(lambda: sdk.get_queue_stats("emails").completed == 8
                 and sdk.get_queue_stats("payments").failed == 1)
        busy = seed_history(r, prefix, "emails", int(r.time()[0]) * 1000)
        running = tm.emit("export-orders", queue="reports", data={"month": "2026-11"})
        wait_for(lambda: (j := sdk.get_job(running, "reports")) is not None
                 and j.status == "processing")

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        log_in(page, live_server.url, staff, "/admin/remq/queues/")
        chart = page.locator("svg.remq-chart")
        assert chart.count() == 1
        label = chart.get_attribute("aria-label") or ""
        assert label.startswith("All queues: ")
        assert re.search(r" and 1 failed in the last 3 hours|and \d+ failed", label)
        # a bar a busy minute of the history, and the current minute's real jobs
        bars = page.locator("svg.remq-chart g.remq-bar-m").count()
        assert busy <= bars <= busy + 2
        assert page.locator("svg.remq-chart rect.remq-f").count() >= 1
        box = chart.bounding_box()
        assert box is not None
        assert box["width"] > 600
        assert box["height"] > 100
        row = page.locator('tr[data-queue="emails"]')
        runtime = row.locator("[data-remq-runtime]").inner_text()
        assert re.fullmatch(r"[\d.]+ ms / [\d.]+ ms", runtime), runtime
        page.screenshot(path=str(out / "admin-queues-chart.png"), full_page=True)

        # a running job's page: its run time moves on with the live refresh, no reload
        page.goto(f"{live_server.url}/admin/remq/jobs/reports/{running}/")
        page.evaluate("window.__sameDocument = true")
        first = page.inner_text("[data-remq-run]")
        assert "so far" in first
        page.wait_for_function(
            "(t) => document.querySelector('[data-remq-run]').textContent !== t", arg=first,
            timeout=20_000)
        assert page.evaluate("window.__sameDocument === true")
        # the list shows it too, still running
        page.goto(f"{live_server.url}/admin/remq/jobs/?queue=reports")
        assert page.locator(f'tr[data-job="{running}"] [data-remq-run] span[title="still running"]'
                            ).count() == 1
        assert page.locator("figure.remq-trend strong", has_text="Queue “reports”").count() == 1
        page.goto(f"{live_server.url}/admin/remq/jobs/reports/{running}/")
        release.set()
        page.wait_for_function(
            "document.getElementById('remq-job-status').textContent.trim() === 'completed'",
            timeout=30_000)
        page.wait_for_function("document.querySelector('[data-remq-run]') && "
                               "document.querySelector('[data-remq-run]').textContent"
                               ".includes('from started to finished')", timeout=20_000)

        dark = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme="dark")
        dark.context.add_cookies(page.context.cookies())
        dark.goto(live_server.url + "/admin/remq/queues/")
        bar = dark.locator("svg.remq-chart rect.remq-c").first
        assert bar.evaluate("e => getComputedStyle(e).fill") != "rgb(46, 125, 50)"  # dark green
        dark.screenshot(path=str(out / "admin-queues-chart-dark.png"), full_page=True)
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.context.add_cookies(page.context.cookies())
        phone.goto(live_server.url + "/admin/remq/queues/")
        assert phone.evaluate("document.documentElement.scrollWidth <= innerWidth + 1")
        phone.screenshot(path=str(out / "admin-queues-chart-phone.png"), full_page=True)
        assert errors == []
