"""Search inside job data and filter by event (issue 22, item 6): bounded by the same
window as the id search, and saying where it stopped."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from django_remq.core import TaskManager
from django_remq.core.errors import InvalidOptions
from django_remq.core.sdk import listings

from .admin_support import PROCESSOR
from .sdk_seed import seed_finished

pytestmark = pytest.mark.redis


@pytest.fixture
def tm(make_tm):
    tm: TaskManager = make_tm(processor=PROCESSOR)
    return tm


def rows(client, **params) -> str:
    return client.get(reverse("remq_admin:jobs"), params).content.decode()


def test_search_in_data_and_by_event(admin_client, sdk, tm):
    ada = tm.emit("send-email", data={"to": "ada@example.com"})
    bob = tm.emit("send-email", data={"to": "bob@example.com"})
    card = tm.emit("charge-card", data={"customer": "ada@example.com"})
    assert ada not in rows(admin_client, q="ada@")  # not in id or name: data not searched
    html = rows(admin_client, q="ADA@", data="1")  # case-insensitive
    assert ada in html
    assert card in html
    assert bob not in html
    html = rows(admin_client, event="send-email")
    assert ada in html
    assert bob in html
    assert card not in html
    html = rows(admin_client, event="send-email", q="ada@", data="1")
    assert ada in html
    assert card not in html
    assert bob not in html
    found = sdk.search_job_rows("", event="charge-card")
    assert [j.id for j in found.jobs] == [card]
    with pytest.raises(InvalidOptions, match="non-empty str"):
        sdk.search_job_rows("")
    html = rows(admin_client, event="no-such-event")
    assert "No “no-such-event” job" in html


def test_a_data_search_stops_at_its_window_and_says_so(admin_client, sdk, tm, monkeypatch):
    monkeypatch.setattr(listings, "SEARCH_WINDOW", 5)
    old = tm.emit("send-email", data={"needle": "deep"})
    for n in range(8):  # each in a millisecond of its own (the window steps by score)
        time.sleep(0.003)
        tm.emit("send-email", data={"n": n})
    html = rows(admin_client, q="deep", data="1")
    assert old not in html
    assert "Search older jobs" in html
    found = sdk.search_job_rows("deep", in_data=True)
    assert found.older is not None
    again = sdk.search_job_rows("deep", in_data=True, before=found.older)
    assert [j.id for j in again.jobs] == [old]


def test_select_all_matching_acts_on_every_job_of_the_filter(admin_client, sdk, r, prefix):
    from django.contrib.admin.models import LogEntry

    seed_finished(r, prefix, "bulk", 60, "failed")
    seed_finished(r, prefix, "bulk", 3, "completed")
    html = rows(admin_client, queue="bulk", status="failed")
    assert "all 60 matching" in html
    assert "matching" not in rows(admin_client, queue="bulk", status="completed")  # one page
    url = reverse("remq_admin:jobs_bulk")
    form = {"action": "retry", "select_across": "1", "queue": "bulk", "status": "failed"}
    ask = admin_client.post(url, form).content.decode()
    assert "Retry all 60 failed jobs in “bulk”?" in ask
    assert sdk.get_queue_stats("bulk").failed == 60
    admin_client.post(url, {**form, "confirm": "yes"})
    stats = sdk.get_queue_stats("bulk")
    assert stats.failed == 0
    assert stats.waiting == 60
    assert [e.change_message for e in LogEntry.objects.all()] == [
        "Retry all 60 failed jobs (all matching)"]
    refused = admin_client.post(url, {**form, "action": "cancel"}, follow=True)
    assert "works for retrying failed jobs and deleting" in refused.content.decode()


def test_one_status_of_one_queue_sorts_oldest_first(admin_client, sdk, r, prefix):
    seed_ids = seed_finished(r, prefix, "sorted", 60, "completed")
    newest = rows(admin_client, queue="sorted", status="completed")
    assert newest.index(seed_ids[-1]) < newest.index(seed_ids[-2])
    assert seed_ids[0] not in newest  # page 2
    assert "order=oldest" in newest
    oldest = rows(admin_client, queue="sorted", status="completed", order="oldest")
    assert oldest.index(seed_ids[0]) < oldest.index(seed_ids[1])
    assert seed_ids[-1] not in oldest
    assert 'aria-sort="ascending"' in oldest
    page2 = rows(admin_client, queue="sorted", status="completed", order="oldest", page="2")
    assert seed_ids[-1] in page2  # the pager keeps the order
    assert "order=oldest" not in rows(admin_client, queue="sorted")  # several statuses
