"""Admin actions change Redis as intended, only by POST, destructive ones after a
confirmation; outcomes are shown with the messages framework."""

from __future__ import annotations

import pytest
from django.urls import reverse

from django_remq.core.sdk import Sdk

from .sdk_seed import dead_letter, seed_finished

pytestmark = pytest.mark.redis


def status(sdk: Sdk, job_id: str) -> str | None:
    job = sdk.get_job(job_id, "default")
    return None if job is None else job.status


def act(job_id: str, action: str) -> str:
    return reverse("remq_admin:job_action", args=["default", job_id, action])


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_actions_refuse_get_and_change_nothing(admin_client, jobs, sdk):
    for action in ("retry", "cancel", "delete", "pause", "resume"):
        assert admin_client.get(act(jobs["failed"], action)).status_code == 405
    assert admin_client.get(reverse("remq_admin:jobs_bulk")).status_code == 405
    assert admin_client.get(reverse("remq_admin:dead_letters_action")).status_code == 405
    assert admin_client.get(reverse("remq_admin:queue_action",
                                    args=["default", "pause"])).status_code == 405
    assert status(sdk, jobs["failed"]) == "failed"
    assert not sdk.is_queue_paused("default")


def test_actions_need_a_csrf_token(client, admin_user, jobs, sdk):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(act(jobs["failed"], "retry")).status_code == 403
    assert status(sdk, jobs["failed"]) == "failed"


def test_retry_pause_resume(admin_client, jobs, sdk):
    response = admin_client.post(act(jobs["failed"], "retry"), follow=True)
    assert status(sdk, jobs["failed"]) == "waiting"
    assert any("sent to run again" in m for m in messages_of(response))
    admin_client.post(act(jobs["waiting"], "pause"))
    assert status(sdk, jobs["waiting"]) == "paused"
    admin_client.post(act(jobs["waiting"], "resume"))
    assert status(sdk, jobs["waiting"]) == "waiting"


def test_an_action_invalid_for_the_status_is_a_message(admin_client, jobs, sdk):
    response = admin_client.post(act(jobs["completed"], "pause"), follow=True)
    assert status(sdk, jobs["completed"]) == "completed"
    assert any("cannot pause" in m for m in messages_of(response))
    unknown = f"{reverse('remq_admin:job', args=['default', jobs['completed']])}explode/"
    assert admin_client.post(unknown).status_code == 405  # the job page (GET only), no action


def test_cancel_and_delete_ask_first(admin_client, jobs, sdk):
    for action, job_id, after in (("cancel", jobs["delayed"], "cancelled"),
                                  ("delete", jobs["completed"], None)):
        ask = admin_client.post(act(job_id, action))
        assert ask.status_code == 200
        assert 'name="confirm" value="yes"' in ask.content.decode()
        assert status(sdk, job_id) not in (after, None)  # nothing changed yet
        done = admin_client.post(act(job_id, action), {"confirm": "yes"}, follow=True)
        assert status(sdk, job_id) == after
        assert messages_of(done)


def test_bulk_retry_cancel_delete(admin_client, jobs, sdk):
    url = reverse("remq_admin:jobs_bulk")
    pick = [f"default:{jobs[s]}" for s in ("failed", "cancelled", "completed")]
    response = admin_client.post(url, {"action": "retry", "_selected": pick}, follow=True)
    assert status(sdk, jobs["failed"]) == "waiting"
    assert status(sdk, jobs["cancelled"]) == "waiting"
    assert status(sdk, jobs["completed"]) == "completed"  # refused, and said so
    text = " ".join(messages_of(response))
    assert "Retry: 2 jobs" in text
    assert "Not changed (1)" in text
    pick = [f"default:{jobs[s]}" for s in ("waiting", "delayed")]
    ask = admin_client.post(url, {"action": "cancel", "_selected": pick})
    assert jobs["waiting"] in ask.content.decode()
    assert status(sdk, jobs["waiting"]) == "waiting"
    admin_client.post(url, {"action": "cancel", "_selected": pick, "confirm": "yes"})
    assert status(sdk, jobs["waiting"]) == status(sdk, jobs["delayed"]) == "cancelled"
    admin_client.post(url, {"action": "delete", "_selected": pick, "confirm": "yes"})
    assert status(sdk, jobs["waiting"]) is None
    assert status(sdk, jobs["delayed"]) is None
    nothing = admin_client.post(url, {"action": "delete"}, follow=True)
    assert any("Select one or more" in m for m in messages_of(nothing))


def test_queue_pause_resume_and_retry_all_failed(admin_client, jobs, sdk):
    def queue_url(action: str) -> str:
        return reverse("remq_admin:queue_action", args=["default", action])

    admin_client.post(queue_url("pause"))
    assert sdk.is_queue_paused("default")
    admin_client.post(queue_url("resume"))
    assert not sdk.is_queue_paused("default")
    ask = admin_client.post(queue_url("retry_failed"))  # asks first, saying how many
    assert "Run the 1 failed job of queue" in ask.content.decode()
    assert status(sdk, jobs["failed"]) == "failed"
    response = admin_client.post(queue_url("retry_failed"), {"confirm": "yes"}, follow=True)
    assert status(sdk, jobs["failed"]) == "waiting"
    assert any("1 failed job" in m for m in messages_of(response))
    again = admin_client.post(queue_url("retry_failed"), follow=True)  # nothing failed now
    assert any("No failed jobs" in m for m in messages_of(again))


def test_delete_completed_older_than(admin_client, sdk, r, prefix):
    seed_finished(r, prefix, "old", 30, "completed", start_ms=1_700_000_000_000)
    url = reverse("remq_admin:queue_action", args=["old", "delete_finished"])
    form = {"status": "completed", "amount": "7", "unit": "days"}
    ask = admin_client.post(url, form)
    assert "more than 7 days ago" in ask.content.decode()
    assert sdk.get_queue_stats("old").completed == 30
    done = admin_client.post(url, {**form, "confirm": "yes"}, follow=True)
    assert sdk.get_queue_stats("old").completed == 0
    assert any("Deleted 30 completed jobs" in m for m in messages_of(done))
    bad = admin_client.post(url, {"amount": "-1", "unit": "days"}, follow=True)
    assert any("Give an age" in m for m in messages_of(bad))


def test_dead_letters_requeue_and_delete(admin_client, jobs, sdk):
    [entry] = sdk.list_dlq()
    url = reverse("remq_admin:dead_letters_action")
    admin_client.post(url, {"only": f"requeue:{entry.entry_id}"})
    assert sdk.list_dlq() == []
    assert status(sdk, jobs["failed"]) == "waiting"
    r = sdk.conn.sync
    e1 = dead_letter(r, sdk.keys.prefix, {"id": "x1", "queue": "default", "reason": "poison"})
    e2 = dead_letter(r, sdk.keys.prefix, {"id": "x2", "queue": "other", "reason": "poison"},
                     queue="other")
    ask = admin_client.post(url, {"action": "delete", "_selected": [e1, e2]})
    assert e1 in ask.content.decode()
    assert sdk.get_dlq_length() == 2
    admin_client.post(url, {"action": "delete", "_selected": [e1, e2], "confirm": "yes"})
    assert sdk.get_dlq_length() == 0


def test_next_must_stay_on_this_site(admin_client, jobs, sdk):
    response = admin_client.post(reverse("remq_admin:queue_action", args=["default", "pause"]),
                                 {"next": "https://evil.example/"})
    assert response["Location"] == reverse("remq_admin:queues")


def test_a_job_id_with_a_slash(admin_client, sdk, redis_url, prefix):
    from django_remq.core import TaskManager

    tm = TaskManager.init(db=redis_url, prefix=prefix)
    job_id = tm.emit("report", data={}, options={"id": "report/2026-10"})
    tm.conn.close()
    page = admin_client.get(reverse("remq_admin:job", args=["default", job_id]))
    assert page.status_code == 200
    assert "report/2026-10" in page.content.decode()
    listing = admin_client.get(reverse("remq_admin:jobs")).content.decode()
    assert 'href="/admin/remq/jobs/default/report/2026-10/"' in listing
    admin_client.post(act(job_id, "pause"))
    assert status(sdk, job_id) == "paused"
