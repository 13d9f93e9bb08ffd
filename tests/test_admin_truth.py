"""What the pages say is true (issue 22): one dead letter per job, attempt numbers that
follow each other across manual retries, no "cancel requested" on a stopped job, counts
named as the Jobs page names them, plurals that agree. Each test failed before the fix."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from django.urls import reverse

from django_remq.core import TaskManager

from .admin_support import PROCESSOR, boom

pytestmark = pytest.mark.redis


@pytest.fixture
def engine(make_tm):
    tm: TaskManager = make_tm(processor=PROCESSOR)
    tm.register_handler("charge-card", boom, options={"attempts": 0})
    tm.register_handler("flaky", boom, options={"attempts": 1, "retry_delay_ms": 0})
    return tm


def drain(tm: TaskManager) -> None:
    asyncio.run(tm.run(burst=True))


def act(job_id: str, action: str) -> str:
    return reverse("remq_admin:job_action", args=["default", job_id, action])


def page(client: Any, job_id: str) -> str:
    return client.get(reverse("remq_admin:job", args=["default", job_id])).content.decode()


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_a_job_has_one_dead_letter_whatever_its_retries(admin_client, sdk, engine):
    job_id = engine.emit("charge-card", data={"n": 1})
    drain(engine)
    assert [e.id for e in sdk.list_dlq()] == [job_id]
    admin_client.post(act(job_id, "retry"))  # a retried job leaves the dead letters
    assert sdk.list_dlq() == []
    drain(engine)  # fails again: one entry, not two
    [entry] = sdk.list_dlq()
    admin_client.post(reverse("remq_admin:dead_letters_action"),
                      {"action": "requeue", "_selected": [entry.entry_id]})
    assert sdk.list_dlq() == []
    drain(engine)
    admin_client.post(reverse("remq_admin:queue_action", args=["default", "retry_failed"]),
                      {"confirm": "yes"})  # the bulk retry too
    assert sdk.list_dlq() == []
    drain(engine)
    assert [e.id for e in sdk.list_dlq()] == [job_id]
    cards = text(admin_client.get(reverse("remq_admin:queues")).content.decode())
    assert "1 Failed" in cards
    assert "1 Dead letters" in cards


def test_attempt_numbers_follow_each_other_across_manual_retries(admin_client, sdk, engine):
    job_id = engine.emit("flaky")  # one automatic retry: attempts 1 and 2
    drain(engine)
    for _ in range(2):  # two manual retries: attempts 3 and 4
        admin_client.post(act(job_id, "retry"))
        drain(engine)
    job = sdk.get_job(job_id, "default")
    assert [e.attempt for e in job.errors] == [1, 2, 3, 4]
    html = text(page(admin_client, job_id))
    assert "Attempts 4" in html
    assert "retries left" not in html
    assert "retry left" not in html
    admin_client.post(act(job_id, "retry"))  # waiting again: 4 runs so far, not 5
    assert "Attempts 4" in text(page(admin_client, job_id))
    rows = text(admin_client.get(reverse("remq_admin:jobs") + "?queue=default").content
                .decode())
    assert "flaky default waiting — 4" in rows


def test_a_finished_job_has_no_automatic_retries_left(admin_client, sdk, make_tm):
    tm: TaskManager = make_tm(processor=PROCESSOR)
    tm.register_handler("fine", lambda task, ctx: None, options={"attempts": 2})
    job_id = tm.emit("fine")
    assert "automatic retries left" in text(page(admin_client, job_id))  # waiting: it may
    drain(tm)
    assert "automatic retries left" not in text(page(admin_client, job_id))


def test_cancel_requested_goes_once_the_job_is_cancelled(admin_client, sdk, engine, r, prefix):
    job_id = engine.emit("charge-card")
    key = f"{prefix}:{{default}}:job:{job_id}"
    r.hset(key, "status", "processing")  # as a worker runs it
    r.zrem(f"{prefix}:{{default}}:status:waiting", job_id)
    r.zadd(f"{prefix}:{{default}}:status:processing", {job_id: 1})
    admin_client.post(act(job_id, "cancel"), {"confirm": "yes"})
    assert "cancel requested" in page(admin_client, job_id)
    jobs = admin_client.get(reverse("remq_admin:jobs")).content.decode()
    assert "stopping" in jobs
    r.hset(key, "status", "cancelled")  # as the worker's finish leaves it
    r.zrem(f"{prefix}:{{default}}:status:processing", job_id)
    r.zadd(f"{prefix}:{{default}}:status:cancelled", {job_id: 2})
    assert r.hget(key, "cancel_requested")  # still in the record ...
    assert "cancel requested" not in page(admin_client, job_id)  # ... not on the page
    assert "stopping" not in admin_client.get(reverse("remq_admin:jobs")).content.decode()


def test_queues_name_statuses_as_jobs_does_and_count_every_one(admin_client, sdk, engine):
    _waiting, paused, cancelled = (engine.emit("charge-card") for _ in range(3))
    sdk.pause_job(paused, "default")
    sdk.cancel_job(cancelled, "default")
    html = admin_client.get(reverse("remq_admin:queues")).content.decode()
    cards = text(html)
    assert "Running" not in cards
    assert "running" not in cards
    for label in ("1 Waiting", "0 Processing", "1 Paused", "1 Cancelled", "0 Failed"):
        assert label in cards
    assert "Retry failed" not in html  # nothing has failed
    jobs = admin_client.get(reverse("remq_admin:jobs") + "?queue=default").content.decode()
    assert "Retry all" not in jobs


def test_confirmations_agree_in_number(admin_client, sdk, engine):
    job_id = engine.emit("charge-card")
    drain(engine)
    [entry] = sdk.list_dlq()
    one = admin_client.post(reverse("remq_admin:dead_letters_action"),
                            {"action": "delete", "_selected": [entry.entry_id]}).content.decode()
    assert "Delete this dead letter?" in one
    assert "1 dead letters" not in one
    bulk = admin_client.post(reverse("remq_admin:jobs_bulk"),
                             {"action": "delete", "_selected": [f"default:{job_id}"]})
    assert "Delete this job?" in bulk.content.decode()
    assert "1 jobs" not in bulk.content.decode()


def test_list_rows_show_the_error_type_and_120_characters(admin_client, sdk, make_tm):
    tm: TaskManager = make_tm(processor=PROCESSOR)

    def long_error(task, ctx):
        raise ValueError("x" * 60 + " then the part that says what went wrong " + "y" * 40)

    tm.register_handler("long-error", long_error)
    tm.emit("long-error")
    drain(tm)
    html = admin_client.get(reverse("remq_admin:jobs") + "?status=failed").content.decode()
    [line] = re.findall(r'<div class="remq-err-line"[^>]*>([^<]*)</div>', html)
    assert line.startswith("ValueError: xxx")
    assert "then the part that says what went wrong" in line
    assert len(line) == 120
    assert line.endswith("…")
