"""Every action taken in the pages is in Django admin's LogEntry (user, object, what) and
shows in the admin index's "Recent actions", with no model or migration of ours."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.urls import reverse

from django_remq.admin_views import audit

pytestmark = pytest.mark.redis


def act(job_id: str, action: str) -> str:
    return reverse("remq_admin:job_action", args=["default", job_id, action])


def trail() -> list[tuple[str, str, str, int, str]]:
    return [(e.content_type.model, e.object_id, e.object_repr, e.action_flag, e.change_message)
            for e in LogEntry.objects.order_by("pk")]


def test_each_job_action_is_recorded_with_its_user(admin_client, admin_user, jobs, sdk):
    admin_client.post(act(jobs["failed"], "retry"))
    admin_client.post(act(jobs["waiting"], "pause"))
    admin_client.post(act(jobs["waiting"], "resume"))
    admin_client.post(act(jobs["delayed"], "cancel"))  # asks first: nothing done, nothing said
    admin_client.post(act(jobs["delayed"], "cancel"), {"confirm": "yes"})
    admin_client.post(act(jobs["completed"], "delete"), {"confirm": "yes"})
    admin_client.post(act(jobs["completed"], "pause"))  # refused (gone): not recorded
    got = trail()
    assert [(m, o, f, msg) for m, o, _, f, msg in got] == [
        ("job", f"default/{jobs['failed']}", CHANGE, "Retried"),
        ("job", f"default/{jobs['waiting']}", CHANGE, "Paused"),
        ("job", f"default/{jobs['waiting']}", CHANGE, "Resumed"),
        ("job", f"default/{jobs['delayed']}", CHANGE, "Cancelled"),
        ("job", f"default/{jobs['completed']}", DELETION, "Deleted"),
    ]
    assert got[0][2] == f"{jobs['failed']} (queue default)"
    assert {e.user_id for e in LogEntry.objects.all()} == {admin_user.pk}
    assert {e.content_type.app_label for e in LogEntry.objects.all()} == {audit.APP_LABEL}


def test_bulk_queue_and_dead_letter_actions_are_recorded(admin_client, jobs, sdk):
    bulk = reverse("remq_admin:jobs_bulk")
    admin_client.post(bulk, {"action": "cancel", "confirm": "yes",
                             "_selected": [f"default:{jobs['waiting']}",
                                           f"default:{jobs['paused']}"]})
    queue = reverse("remq_admin:queue_action", args=["default", "pause"])
    admin_client.post(queue)
    admin_client.post(reverse("remq_admin:queue_action", args=["default", "resume"]))
    [entry] = sdk.list_dlq()
    admin_client.post(reverse("remq_admin:dead_letters_action"),
                      {"action": "requeue", "_selected": [entry.entry_id]})
    admin_client.post(reverse("remq_admin:queue_action", args=["default", "delete_finished"]),
                      {"status": "cancelled", "amount": "0", "unit": "days", "confirm": "yes"})
    got = [(m, o, msg) for m, o, _, _, msg in trail()]
    assert got == [
        ("job", f"default/{jobs['waiting']}", "Cancelled (bulk action on 2 jobs)"),
        ("job", f"default/{jobs['paused']}", "Cancelled (bulk action on 2 jobs)"),
        ("queue", "default", "Paused the queue"),
        ("queue", "default", "Resumed the queue"),
        ("dead letter", entry.entry_id, "Requeued its job"),
        ("queue", "default", "Deleted 3 cancelled jobs finished more than 0 days ago"),
    ]


def test_recent_actions_on_the_admin_index(admin_client, jobs):
    admin_client.post(act(jobs["failed"], "retry"))
    html = admin_client.get(reverse("admin:index")).content.decode()
    recent = html[html.index("Recent actions"):]
    assert f"{jobs['failed']} (queue default)" in recent
    assert "job" in recent.lower()


def test_no_model_and_no_migration_of_ours():
    from django.apps import apps

    assert list(apps.get_app_config("django_remq").get_models()) == []
    assert not apps.is_installed(audit.APP_LABEL)  # remove_stale_contenttypes skips it


def test_recent_actions_link_to_the_objects_pages(admin_client, jobs, sdk):
    admin_client.post(act(jobs["failed"], "retry"))
    admin_client.post(reverse("remq_admin:queue_action", args=["default", "pause"]))
    job_entry, queue_entry = LogEntry.objects.order_by("pk")
    follow = admin_client.get(job_entry.get_admin_url())
    assert follow.status_code == 302
    assert follow.url == reverse("remq_admin:job", args=["default", jobs["failed"]])
    assert admin_client.get(queue_entry.get_admin_url()).url.endswith("?queue=default")
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert f'href="{job_entry.get_admin_url()}"' in html
