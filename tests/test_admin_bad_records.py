"""The admin pages survive what Redis holds, whatever it is: a job record that does not
read (bytes that are not UTF-8, an unknown status) is shown as corrupt, never a 500; a
queue name the URLs cannot carry is refused at every way in, and one already stored is
left out of the pages with a note."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from django.urls import reverse

from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk
from django_remq.core.store.keys import Keys

from .admin_support import remq_at

pytestmark = pytest.mark.redis


@pytest.fixture
def remq(redis_url: str, prefix: str) -> Any:
    with remq_at(redis_url, prefix):
        yield


@pytest.fixture
def seeded(remq: Any, redis_url: str, prefix: str) -> dict[str, str]:
    """Waiting jobs: one good, one whose data is not UTF-8, one whose name is not (a
    listing's rows show names, not data), one of status "weird"."""
    tm = TaskManager.init(db=redis_url, prefix=prefix)  # type: ignore[arg-type]
    good, bytes_, name, weird = tm.emit_many({"event": "work", "data": i} for i in range(4))
    tm.conn.close()
    qk = Keys(prefix).queue("default")
    raw = redis.Redis.from_url(redis_url)
    raw.hset(qk.job(bytes_), "data", b"\xff\xfe")
    raw.hset(qk.job(name), "name", b"w\xf6rk")
    raw.hset(qk.job(weird), "status", "weird")
    raw.close()
    return {"good": good, "bytes": bytes_, "name": name, "weird": weird}


def live(admin_client: Any, view: str, **params: str) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in {"view": view, **params}.items())
    response = admin_client.get(f"{reverse('remq_admin:live')}?{query}")
    assert response.status_code == 200, response.content[:300]
    return json.loads(response.content)


@pytest.mark.parametrize(("which", "field"), [("bytes", "data"), ("name", "name"),
                                             ("weird", "status")])
def test_the_job_page_of_a_corrupt_record_says_so(admin_client, seeded, which, field):
    job_id = seeded[which]
    response = admin_client.get(reverse("remq_admin:job", args=["default", job_id]))
    assert response.status_code == 200
    text = response.content.decode()
    assert "record is corrupt" in text
    assert f"&#x27;{field}&#x27;" in text  # the field at fault is named
    assert 'data-action="delete"' in text  # the one action that needs no record
    assert 'data-action="retry"' not in text
    refreshed = live(admin_client, "job", queue="default", job_id=job_id)
    assert refreshed["summary"]["status"] == "corrupt"
    assert "CorruptRecord" in refreshed["html"]


def test_the_jobs_page_shows_corrupt_records_as_rows_of_their_own(admin_client, seeded):
    for url in (reverse("remq_admin:jobs") + "?queue=default", reverse("remq_admin:jobs")):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        text = response.content.decode()
        for job_id in seeded.values():
            assert f'data-job="{job_id}"' in text, url
        corrupt = text[text.index('class="remq-corrupt-row"'):]
        assert seeded["name"] in corrupt
        assert seeded["weird"] in corrupt
        assert "UTF-8" in corrupt
    html = live(admin_client, "jobs", queue="default")["html"]
    assert f'value="default:{seeded["name"]}"' in html  # selectable, for a bulk delete
    searched = admin_client.get(reverse("remq_admin:jobs") + f"?q={seeded['bytes'][:8]}")
    assert searched.status_code == 200


def test_corrupt_records_can_be_deleted_and_retried_without_a_500(admin_client, seeded,
                                                                   redis_url, prefix):
    sdk = Sdk(redis_url, prefix=prefix)
    retry = admin_client.post(
        reverse("remq_admin:job_action", args=["default", seeded["weird"], "retry"]),
        follow=True)
    assert retry.status_code == 200  # refused (it is no failed job), said on the page
    url = reverse("remq_admin:jobs_bulk")
    pick = [f"default:{seeded[k]}" for k in ("bytes", "name", "weird")]
    done = admin_client.post(url, {"action": "delete", "_selected": pick, "confirm": "yes"},
                             follow=True)
    assert done.status_code == 200
    assert sdk.get_job(seeded["bytes"], "default") is None
    assert sdk.get_job(seeded["name"], "default") is None
    assert sdk.get_job(seeded["weird"], "default") is None
    assert sdk.get_job(seeded["good"], "default") is not None


def test_retrying_a_failed_corrupt_job_is_done_and_said(admin_client, remq, redis_url,
                                                       prefix):
    tm = TaskManager.init(db=redis_url, prefix=prefix)  # type: ignore[arg-type]
    job_id = tm.emit("work")
    tm.conn.close()
    sdk = Sdk(redis_url, prefix=prefix)
    qk = Keys(prefix).queue("default")
    raw = redis.Redis.from_url(redis_url)
    raw.zrem(qk.status("waiting"), job_id)  # as a worker leaves a corrupt job: failed
    raw.zadd(qk.status("failed"), {job_id: 1})
    raw.hset(qk.job(job_id), mapping={"status": "failed", "data": b"\xc3("})
    raw.close()
    response = admin_client.post(
        reverse("remq_admin:job_action", args=["default", job_id, "retry"]), follow=True)
    assert response.status_code == 200
    said = " ".join(str(m) for m in response.context["messages"])
    assert "retry done" in said
    assert "UTF-8" in said
    assert Sdk(redis_url, prefix=prefix).list_jobs("default", "waiting").corrupt[0].id == job_id
    assert sdk.get_queue_stats("default").waiting == 1


@pytest.mark.parametrize("name", ["a/b", "/", "reports/2026"])
def test_a_queue_name_with_a_slash_is_refused_everywhere(redis_url, prefix, name):
    from django_remq.core.handlers import HandlerRegistry

    tm = TaskManager.init(db=redis_url, prefix=prefix)  # type: ignore[arg-type]
    try:
        with pytest.raises(ValueError, match=r"may not contain.*'/'.*admin"):
            tm.emit("work", queue=name)
        with pytest.raises(ValueError, match=r"'/'"):
            HandlerRegistry().register("work", lambda task, ctx: None, queue=name)
    finally:
        tm.conn.close()
    from django_remq import handler
    from django_remq.errors import ImproperlyConfiguredRemq

    with pytest.raises(ImproperlyConfiguredRemq, match=r"'/'"):
        handler("work-slash", queue=name)(lambda task, ctx: None)


def test_a_stored_queue_name_the_urls_cannot_carry_is_left_out_with_a_note(
        admin_client, remq, redis_url, prefix, r):
    tm = TaskManager.init(db=redis_url, prefix=prefix)  # type: ignore[arg-type]
    job_id = tm.emit("work")
    tm.conn.close()
    keys = Keys(prefix)
    r.sadd(keys.queues, "old/name")  # from before the rule refused "/"
    r.hset(f"{prefix}:{{old/name}}:job:x", mapping={"id": "x", "name": "work"})
    r.zadd(f"{prefix}:{{old/name}}:status:waiting", {"x": 1})
    response = admin_client.get(reverse("remq_admin:queues"))
    assert response.status_code == 200
    text = response.content.decode()
    assert 'data-queue="default"' in text  # every other queue still shown
    assert 'data-queue="old/name"' not in text
    note = text[text.index("remq-unusable"):]
    assert "old/name" in note
    assert f"SREM {keys.queues}" in note
    assert "old/name" in live(admin_client, "queues")["html"]
    for url in (reverse("remq_admin:jobs"), reverse("remq_admin:dead_letters"),
                reverse("remq_admin:workers")):
        page = admin_client.get(url)
        assert page.status_code == 200, url
    assert job_id in admin_client.get(reverse("remq_admin:jobs")).content.decode()
    sdk = Sdk(redis_url, prefix=prefix)
    assert sdk.get_queues() == ["default"]
    assert sdk.get_queues_info().unusable[0][0] == "old/name"
    assert [j.id for j in sdk.list_jobs()] == [job_id]
