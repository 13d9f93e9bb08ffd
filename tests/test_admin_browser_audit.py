"""In a real browser (Playwright on Debian's chromium, as test_admin_browser.py): the
actions of issue 22's fixes as a user clicks them, and the audit trail they leave in the
admin index's "Recent actions"."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk

from .admin_support import PROCESSOR, boom, remq_at
from .test_admin_browser import browser, log_in, staff  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def failed_jobs(redis_url: str, prefix: str, n: int) -> tuple[TaskManager, list[str]]:
    tm = TaskManager.init(db=redis_url, prefix=prefix, processor=PROCESSOR)  # type: ignore[arg-type]
    tm.register_handler("charge-card", boom, queue="payments", options={"attempts": 0})
    ids = [tm.emit("charge-card", queue="payments", data={"order": i}) for i in range(n)]
    # a thread of its own: Playwright's sync API holds this thread's event loop
    runner = threading.Thread(target=lambda: asyncio.run(tm.run(burst=True)))
    runner.start()
    runner.join(60)
    return tm, ids


def test_fixes_and_the_audit_trail_in_the_browser(staff, live_server, browser,  # noqa: F811
                                                  redis_url, prefix):
    tm, ids = failed_jobs(redis_url, prefix, 3)
    sdk = Sdk(redis_url, prefix=prefix)
    with remq_at(redis_url, prefix):
        page: Any = browser.new_page(viewport={"width": 1280, "height": 820})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        log_in(page, live_server.url, staff, "/admin/remq/queues/")
        cards = page.inner_text(".remq-cards").lower()  # (shown in capitals by the CSS)
        assert "processing" in cards
        assert "running" not in cards
        assert "cancelled" in cards
        assert "paused" in cards
        # "Retry failed" asks first, saying how many
        page.click('tr[data-queue="payments"] button:has-text("Retry failed")')
        assert "Run the 3 failed jobs of queue “payments” again?" in page.inner_text(
            ".remq-confirm")
        assert sdk.get_queue_stats("payments").failed == 3
        page.click('.remq-confirm a.cancel-link')  # "No, take me back": nothing changed
        assert sdk.get_queue_stats("payments").failed == 3
        # a job's page: retry it, and its dead letter goes with it
        page.goto(f"{live_server.url}/admin/remq/jobs/payments/{ids[0]}/")
        assert page.locator("a.remq-dlq-link").count() == 1
        page.click('button[data-action="retry"]')
        page.wait_for_selector(".messagelist .success")
        assert page.locator("a.remq-dlq-link").count() == 0
        assert [e.id for e in sdk.list_dlq()].count(ids[0]) == 0
        # one dead letter deleted: the confirmation speaks of one
        page.goto(f"{live_server.url}/admin/remq/dead-letters/")
        page.locator(f'tr:has(a[href*="{ids[1]}"]) button:has-text("Delete")').click()
        assert "Delete this dead letter?" in page.inner_text(".remq-confirm")
        page.click('.remq-confirm input[type="submit"]')
        page.wait_for_selector(".messagelist .success")
        assert "1 dead letter deleted" in page.inner_text(".messagelist")
        # the queue paused and resumed from the queues page
        page.goto(f"{live_server.url}/admin/remq/queues/")
        page.click('tr[data-queue="payments"] button:has-text("Pause")')
        page.wait_for_selector(".messagelist .success")
        # every action is in "Recent actions", newest first
        page.goto(f"{live_server.url}/admin/")
        recent = page.inner_text("#recent-actions-module")
        assert recent.index("payments") < recent.index(f"{ids[0]} (queue payments)")
        assert "dead letter" in recent.lower()  # the deleted entry, with its kind
        assert "queue" in recent.lower()
        assert errors == []
        page.close()
    tm.conn.close()
