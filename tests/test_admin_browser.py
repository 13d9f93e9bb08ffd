"""The admin pages in a real browser (Playwright on Debian's chromium) against a live
server and a real worker: log in, open the queues, open a failed job, retry it, and watch
it complete without a reload. Also renders every page (saved as screenshots: set
``REMQ_SCREENSHOTS=docs/screenshots`` to refresh the README's images)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk
from django_remq.decorators import declare, registry

from .admin_support import PROCESSOR, remq_at, worker_thread

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (./dev test does)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def staff(transactional_db, django_user_model):
    django_user_model.objects.create_superuser("ada", "ada@example.com", PASSWORD)
    return "ada"


def log_in(page: Any, base: str, user: str, next_path: str) -> None:
    page.goto(f"{base}/admin/login/?next={next_path}")
    page.fill("#id_username", user)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_path}")


def wait_for(cond: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_retry_a_failed_job_and_watch_it_complete(staff, live_server, browser, redis_url,
                                                   prefix):
    runs: dict[str, int] = {}

    async def flaky(task: Any, ctx: Any) -> str:
        runs[task.id] = runs.get(task.id, 0) + 1
        if runs[task.id] == 1:
            raise ValueError("card declined")
        task.logger("second time lucky")
        for step in (25, 50, 75):
            ctx.socket.update({"step": step}, step)
            await asyncio.sleep(0.8)
        return "charged"

    tm = TaskManager.init(db=redis_url, prefix=prefix, processor=PROCESSOR)  # type: ignore[arg-type]
    tm.register_handler("charge-card", flaky, options={"attempts": 0})
    sdk = Sdk(redis_url, prefix=prefix)
    with remq_at(redis_url, prefix), worker_thread(tm):
        job_id = tm.emit("charge-card", data={"amount": 42})
        wait_for(lambda: (j := sdk.get_job(job_id, "default")) is not None
                 and j.status == "failed")
        page = browser.new_page()
        log_in(page, live_server.url, staff, "/admin/remq/queues/")
        row = page.locator('tr[data-queue="default"]')
        assert row.locator("a.remq-count.failed").inner_text() == "1"
        row.locator("a.remq-count.failed").click()
        page.click(f'a[href$="/default/{job_id}/"]')
        assert page.inner_text("#remq-job-status") == "failed"
        assert "card declined" in page.inner_text(".remq-error")
        page.click('button[data-action="retry"]')
        page.wait_for_selector(".messagelist .success")
        page.evaluate("window.__sameDocument = true")
        assert page.inner_text("#remq-job-status") in ("waiting", "processing")
        page.wait_for_function(
            "document.getElementById('remq-job-status').textContent.trim() === 'completed'",
            timeout=30_000)
        assert page.evaluate("window.__sameDocument === true")  # no reload happened
        assert "second time lucky" in page.inner_text(".remq-logs")
        assert 'data-action="retry"' not in page.content()  # buttons follow the status
        assert runs[job_id] == 2
        page.close()


# -- every page, with realistic data: the README's screenshots ---------------------------

def seed_demo(tm: TaskManager, sdk: Sdk) -> dict[str, str]:
    ids: dict[str, str] = {}
    for i in range(6):
        tm.emit("send-welcome-email", queue="emails", data={"user_id": 1000 + i})
    for i in range(3):
        tm.emit("resize-image", queue="media", data={"path": f"uploads/{i}.jpg"},
                options={"delay_ms": 600_000 * (i + 1)})
    ids["failed"] = tm.emit("sync-crm", queue="webhooks", data={"contact": 7, "crm": "acme"})
    ids["report"] = tm.emit("generate-report", data={"report": "monthly", "month": "2026-10"})
    for i in range(4):
        tm.emit("charge-card", queue="payments", data={"order": 500 + i, "amount": 19.9 * i})
    return ids


def test_every_page_in_the_browser(staff, live_server, browser, redis_url, prefix, tmp_path):
    out = Path(os.environ.get("REMQ_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    release = threading.Event()

    async def report(task: Any, ctx: Any) -> dict[str, int]:
        task.logger("fetching orders")
        ctx.socket.update({"step": "fetching"}, 30)
        task.logger("aggregating 12,408 rows")
        ctx.socket.update({"step": "aggregating"}, 60)
        while not release.is_set():
            await asyncio.sleep(0.05)
        return {"rows": 12408}

    async def sync_crm(task: Any, ctx: Any) -> None:
        raise ConnectionError("acme CRM answered 503 Service Unavailable")

    async def quick(task: Any, ctx: Any) -> None:
        task.logger("done")

    async def declined(task: Any, ctx: Any) -> None:
        if task.data["order"] % 2:
            raise ValueError(f"card declined for order {task.data['order']}")

    tm = TaskManager.init(db=redis_url, prefix=prefix, concurrency=4,  # type: ignore[arg-type]
                          processor=PROCESSOR)
    tm.register_handler("generate-report", report)
    tm.register_handler("sync-crm", sync_crm, queue="webhooks", options={"attempts": 0})
    tm.register_handler("send-welcome-email", quick, queue="emails")
    tm.register_handler("charge-card", declined, queue="payments", options={"attempts": 0})
    tm.register_handler("resize-image", quick, queue="media")
    crons = [("nightly-cleanup", "maintenance", "0 3 * * *"),
             ("refresh-rates", "payments", "*/15 * * * *")]
    for event, queue, pattern in crons:  # declared as @handler would: the page shows patterns
        decl = declare(event, quick, queue=queue, options={"repeat": {"pattern": pattern}})
        tm.register_handler(event, quick, queue=queue, options=decl.options)
    sdk = Sdk(redis_url, prefix=prefix)
    with remq_at(redis_url, prefix), worker_thread(tm):
        ids = seed_demo(tm, sdk)
        wait_for(lambda: (j := sdk.get_job(ids["report"], "default")) is not None
                 and j.progress is not None and j.progress.get("progress") == 60)
        wait_for(lambda: sdk.get_queue_stats("payments").failed == 2
                 and sdk.get_queue_stats("webhooks").failed == 1 and len(sdk.list_cron()) == 2)
        tm.pause_queue("media")
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        log_in(page, live_server.url, staff, "/admin/remq/queues/")
        shots = {
            "admin-queues.png": "/admin/remq/queues/",
            "admin-jobs.png": "/admin/remq/jobs/",
            "admin-job.png": f"/admin/remq/jobs/webhooks/{ids['failed']}/",
            "admin-dead-letters.png": "/admin/remq/dead-letters/",
            "admin-workers.png": "/admin/remq/workers/",
        }
        for name, path in shots.items():
            page.goto(live_server.url + path)
            page.wait_for_function("document.getElementById('remq-live-status')"
                                   ".textContent.startsWith('Live ·')", timeout=15_000)
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth + 1"), name
            page.screenshot(path=str(out / name), full_page=True)
        # a live refresh keeps what the user ticked
        page.goto(live_server.url + "/admin/remq/jobs/")
        page.evaluate("document.addEventListener('remq:updated', () => window.__swapped = true)")
        first = page.locator("input[name=_selected]").first
        first.check()
        page.wait_for_function("window.__swapped === true", timeout=20_000)
        assert page.locator("input[name=_selected]").first.is_checked()
        assert page.inner_text("[data-remq-selected]") == "1 selected"
        page.goto(live_server.url + "/admin/")
        assert page.locator("caption", has_text="Task queue").count() == 1
        dark = browser.new_page(viewport={"width": 1440, "height": 900}, color_scheme="dark")
        dark.context.add_cookies(page.context.cookies())
        dark.goto(live_server.url + f"/admin/remq/jobs/default/{ids['report']}/")
        # dark mode: the admin's own variables drive the colours
        assert dark.evaluate("getComputedStyle(document.body).backgroundColor") != \
            "rgb(255, 255, 255)"
        dark.screenshot(path=str(out / "admin-job-dark.png"), full_page=True)
        dark.goto(live_server.url + "/admin/remq/dead-letters/")
        dark.screenshot(path=str(out / "admin-dead-letters-dark.png"), full_page=True)
        phone_and_audit(browser, page, live_server.url, ids["failed"], out)
        assert errors == []
        release.set()
    for event, queue, _ in crons:
        registry.remove(queue, event)


def phone_and_audit(browser: Any, page: Any, base: str, failed: str, out: Path) -> None:
    """Phone-sized pages (never scrolling sideways), then an action and the admin
    index's "Recent actions" it lands in (the audit trail)."""
    narrow = browser.new_page(viewport={"width": 390, "height": 844})
    narrow.context.add_cookies(page.context.cookies())
    for name, path in (("admin-jobs-phone.png", "/admin/remq/jobs/"),
                       ("admin-job-phone.png", f"/admin/remq/jobs/webhooks/{failed}/")):
        narrow.goto(base + path)
        # narrow screens: the page never scrolls sideways (tables scroll in their box)
        assert narrow.evaluate("document.documentElement.scrollWidth <= innerWidth + 1")
        narrow.screenshot(path=str(out / name), full_page=True)
    page.goto(base + f"/admin/remq/jobs/webhooks/{failed}/")
    page.click('button[data-action="retry"]')
    page.wait_for_selector(".messagelist .success")
    page.goto(base + "/admin/")
    assert f"{failed} (queue webhooks)" in page.inner_text("#recent-actions-module")
    page.screenshot(path=str(out / "admin-recent-actions.png"), full_page=True)


def test_without_a_working_socket_the_page_keeps_polling(staff, live_server, browser, redis_url,
                                                         prefix, settings):
    """The gateway is configured but this (WSGI) server has no WebSocket route: the
    socket fails, and the page stays live by polling (and keeps trying the socket)."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    tm = TaskManager.init(db=redis_url, prefix=prefix, processor=PROCESSOR)  # type: ignore[arg-type]
    with remq_at(redis_url, prefix, GATEWAY={}):
        tm.emit("send-email", queue="mail", data={"n": 1})
        page = browser.new_page()
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        log_in(page, live_server.url, staff, "/admin/remq/queues/")
        assert page.get_attribute("#remq-live", "data-remq-socket") == "/ws/remq/"
        row = page.locator('tr[data-queue="mail"]')
        assert row.locator("a.remq-count.waiting").inner_text() == "1"
        tm.emit("send-email", queue="mail", data={"n": 2})
        page.wait_for_function(
            "document.querySelector('tr[data-queue=\"mail\"] a.remq-count.waiting')"
            ".textContent.trim() === '2'", timeout=20_000)
        assert sockets  # it did try the socket
        assert "WebSocket" not in page.inner_text("#remq-live-status")
        page.close()
    tm.conn.close()
