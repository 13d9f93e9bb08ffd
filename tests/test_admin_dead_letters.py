"""Dead letters you can act on (issue 22, items 6 and 7): filtered by queue and reason,
searchable (bounded, saying so), requeued or purged a queue at a time (asked first,
audited), and linked from the job's page and back."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from django_remq.admin_views import dead_letters
from django_remq.core import TaskManager

from .admin_support import PROCESSOR, boom

pytestmark = pytest.mark.redis


@pytest.fixture
def failed(sdk, make_tm) -> dict[str, list[str]]:
    """Dead letters in two queues: 'payments' (3, no retries) and 'mail' (2, poison-free
    retries exhausted)."""
    tm: TaskManager = make_tm(processor=PROCESSOR)
    tm.register_handler("charge-card", boom, queue="payments", options={"attempts": 0})
    tm.register_handler("send-email", boom, queue="mail",
                        options={"attempts": 1, "retry_delay_ms": 0})
    ids = {"payments": [tm.emit("charge-card", queue="payments", data={"order": n})
                        for n in range(3)],
           "mail": [tm.emit("send-email", queue="mail", data={"to": f"u{n}@example.com"})
                    for n in range(2)]}
    asyncio.run(tm.run(burst=True))
    return ids


def page(client, **params) -> str:
    return client.get(reverse("remq_admin:dead_letters"), params).content.decode()


def shown(html: str) -> int:
    return html.count('<tr data-entry="')


def test_filter_by_queue_and_reason_and_search(admin_client, sdk, failed):
    assert shown(page(admin_client)) == 5
    assert shown(page(admin_client, queue="mail")) == 2
    assert shown(page(admin_client, reason="no_retries")) == 3
    assert shown(page(admin_client, reason="retries_exhausted", queue="payments")) == 0
    one = failed["payments"][1]
    html = page(admin_client, q=one[:12])
    assert shown(html) == 1
    assert one in html
    assert shown(page(admin_client, q="BOOM IN SEND-EMAIL")) == 2  # the error, any case
    assert "No dead letter matches" in page(admin_client, q="nothing like it")


def test_the_filters_show_their_choices_and_keep_what_was_picked(admin_client, sdk, failed):
    html = page(admin_client, queue="mail", reason="no_retries")
    assert '<option value="">All queues</option>' in html
    assert '<option value="mail" selected>mail</option>' in html
    assert '<option value="payments">payments</option>' in html
    assert '<option value="no_retries" selected>no_retries</option>' in html
    jobs = admin_client.get(reverse("remq_admin:jobs"), {"status": "failed"}).content.decode()
    assert '<option value="">Any status</option>' in jobs
    assert '<option value="failed" selected>failed</option>' in jobs
    assert '<option value="completed">completed</option>' in jobs


def test_a_filtered_view_is_bounded_and_says_so(admin_client, sdk, failed, monkeypatch):
    monkeypatch.setattr(dead_letters, "SCAN", 3)
    html = page(admin_client, reason="no_retries")
    assert "Looked at the newest 3 dead letters" in html


def test_requeue_all_and_purge_ask_first_and_are_audited(admin_client, sdk, failed):
    url = reverse("remq_admin:dead_letters_action")
    ask = admin_client.post(url, {"action": "purge", "queue": "mail"}).content.decode()
    assert "Delete every dead letter of queue “mail” (2)?" in ask
    assert len(sdk.list_dlq(queue="mail")) == 2
    admin_client.post(url, {"action": "purge", "queue": "mail", "confirm": "yes"})
    assert sdk.list_dlq(queue="mail") == []
    assert sdk.get_job(failed["mail"][0], "mail").status == "failed"  # the jobs stay
    ask = admin_client.post(url, {"action": "requeue_all", "queue": "payments"})
    assert "Run the jobs of 3 dead letters of queue “payments” again?" in ask.content.decode()
    admin_client.post(url, {"action": "requeue_all", "queue": "payments", "confirm": "yes"})
    assert sdk.list_dlq() == []
    assert {sdk.get_job(j, "payments").status for j in failed["payments"]} == {"waiting"}
    assert [e.change_message for e in LogEntry.objects.order_by("pk")] == [
        "Purged its dead letters (2 entries)", "Requeued its dead letters (3 jobs)"]
    empty = admin_client.post(url, {"action": "purge", "queue": "payments"}, follow=True)
    assert "No dead letters in “payments”" in empty.content.decode()


def test_the_job_page_links_to_its_dead_letter_and_back(admin_client, sdk, failed):
    job_id = failed["payments"][0]
    [entry] = [e for e in sdk.list_dlq() if e.id == job_id]
    job_page = admin_client.get(reverse("remq_admin:job", args=["payments", job_id]))
    html = job_page.content.decode()
    assert f"#{entry.entry_id}" in html  # to its entry
    back = page(admin_client, queue="payments", q=job_id)
    assert f'id="{entry.entry_id}"' in back
    assert reverse("remq_admin:job", args=["payments", job_id]) in back  # and back
    sdk.retry_job(job_id, "payments")  # no longer dead-lettered: no link
    html = admin_client.get(reverse("remq_admin:job", args=["payments", job_id])).content
    assert b"remq-dlq-link" not in html
