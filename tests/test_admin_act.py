"""Acting where you look (issue 22, items 7, 9, 10): "Run now" for a delayed job and a
cron schedule, running jobs linked from the workers page, and a missing job or queue
answered by a 404 page inside the admin."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.urls import reverse

from django_remq.core import TaskManager
from django_remq.core.errors import InvalidJobState, UnknownEventWarning

from .admin_support import PROCESSOR, remq_at, worker_thread

pytestmark = pytest.mark.redis


def test_run_a_delayed_job_now(admin_client, sdk, make_tm):
    tm: TaskManager = make_tm(processor=PROCESSOR)
    tm.register_handler("report", lambda task, ctx: {"ok": True})
    job_id = tm.emit("report", options={"delay_ms": 3_600_000})
    url = reverse("remq_admin:job", args=["default", job_id])
    assert 'data-action="run_now"' in admin_client.get(url).content.decode()
    done = admin_client.post(reverse("remq_admin:job_action",
                                     args=["default", job_id, "run_now"]), follow=True)
    assert "sent to run now" in done.content.decode()
    assert sdk.get_job(job_id, "default").status == "waiting"
    asyncio.run(tm.run(burst=True))  # it is in the stream: a worker runs it at once
    assert sdk.get_job(job_id, "default").status == "completed"
    with pytest.raises(InvalidJobState, match="only delayed jobs"):
        sdk.run_job_now(job_id, "default")
    [entry] = LogEntry.objects.all()
    assert entry.change_message == "Run now (its delay dropped)"


def test_run_a_cron_schedule_now(admin_client, sdk, make_tm, redis_url, prefix):
    tm: TaskManager = make_tm(processor=PROCESSOR)
    tm.register_handler("nightly", lambda task, ctx: None, queue="maintenance",
                        options={"repeat": {"pattern": "0 3 * * *"}})
    with remq_at(redis_url, prefix), worker_thread(tm):
        for _ in range(200):
            if sdk.list_cron():
                break
            asyncio.run(asyncio.sleep(0.05))
        [cron] = sdk.list_cron()
        html = admin_client.get(reverse("remq_admin:workers")).content.decode()
        url = reverse("remq_admin:cron_run_now", args=["maintenance", "nightly"])
        assert url in html
        # this process declares no handler of it (the worker's tm does): emit says so
        with pytest.warns(UnknownEventWarning, match="nightly"):
            done = admin_client.post(url, follow=True)
        job_id = done.redirect_chain[-1][0].rstrip("/").rsplit("/", 1)[1]
        for _ in range(200):
            job = sdk.get_job(job_id, "maintenance")
            if job is not None and job.status == "completed":
                break
            asyncio.run(asyncio.sleep(0.05))
        assert job is not None
        assert job.status == "completed"
        assert sdk.list_cron()[0].next_run == cron.next_run  # the schedule is untouched
    [entry] = LogEntry.objects.all()
    assert entry.action_flag == ADDITION
    assert entry.object_id == f"maintenance/{job_id}"
    missing = admin_client.post(reverse("remq_admin:cron_run_now",
                                        args=["maintenance", "no-such"]))
    assert missing.status_code == 404


def test_running_job_ids_link_to_their_page(admin_client, sdk, make_tm, redis_url, prefix):
    import threading

    release = threading.Event()
    started = threading.Event()

    def slow(task, ctx):
        started.set()
        release.wait(20)

    tm: TaskManager = make_tm(processor={**PROCESSOR, "claim_idle_ms": 600})
    tm.register_handler("slow", slow)
    with remq_at(redis_url, prefix), worker_thread(tm):
        job_id = tm.emit("slow")
        assert started.wait(20)
        for _ in range(200):
            if any(job_id in w.running for w in sdk.get_workers()):
                break
            asyncio.run(asyncio.sleep(0.05))
        html = admin_client.get(reverse("remq_admin:workers")).content.decode()
        release.set()
        for _ in range(200):  # its next heartbeat counts the run
            [info] = sdk.get_workers()
            if info.tasks_run:
                break
            asyncio.run(asyncio.sleep(0.05))
    assert f'href="{reverse("remq_admin:job", args=["default", job_id])}"' in html
    assert info.started > 0
    assert info.rss is not None
    assert info.rss > 1_000_000  # a Python process
    assert (info.tasks_run, info.tasks_failed) == (1, 0)
    assert "Tasks run / failed" in html
    assert "MB</td>" in html  # the RSS, readable


def test_a_missing_job_or_queue_is_a_404_inside_the_admin(admin_client, sdk):
    gone = admin_client.get(reverse("remq_admin:job", args=["default", "nope"]))
    assert gone.status_code == 404
    html = gone.content.decode()
    assert 'id="content-main"' in html  # the admin's page, with its header and crumbs
    assert "breadcrumbs" in html
    assert "No job &#x27;nope&#x27; in queue &#x27;default&#x27;" in html
    bad = admin_client.get(reverse("remq_admin:job", args=["no{braces}", "x"]))
    assert bad.status_code == 404
    assert "breadcrumbs" in bad.content.decode()
    action = admin_client.post(reverse("remq_admin:queue_action", args=["default", "explode"]))
    assert action.status_code == 404
    assert "Unknown queue action" in action.content.decode()


def test_logs_show_newest_first_each_line_tagged_with_its_attempt(admin_client, sdk, make_tm):
    tm: TaskManager = make_tm(processor=PROCESSOR)
    runs: list[int] = []

    def flaky(task, ctx):
        runs.append(1)
        task.logger(f"run {len(runs)} starts")
        if len(runs) < 3:
            raise ValueError(f"run {len(runs)} failed")
        task.logger("run 3 ends well")

    tm.register_handler("flaky", flaky, options={"attempts": 1, "retry_delay_ms": 0})
    job_id = tm.emit("flaky")
    asyncio.run(tm.run(burst=True))  # attempts 1 and 2 fail
    sdk.retry_job(job_id, "default")
    asyncio.run(tm.run(burst=True))  # attempt 3 completes
    import re

    html = admin_client.get(reverse("remq_admin:job", args=["default", job_id])).content.decode()
    lines = re.findall(r'<li data-attempt="(\d+)">.*?</time> ([^<]*)</li>', html)
    assert lines == [("3", "run 3 ends well"), ("3", "run 3 starts"), ("2", "run 2 starts"),
                     ("1", "run 1 starts")]
