"""Durations and trend charts on the admin pages (Django's test client, a real worker):
each job's wait and run time on its page and in the list, a queue's oldest wait and run
times, the per-minute chart (server-rendered SVG) on the queues page and a queue's page."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from django.urls import reverse

from django_remq.admin_views.charts import trend_svg
from django_remq.admin_views.durations import job_durations
from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk
from django_remq.core.types import AdminJobData, JobError, JobState, JobStatus

from .admin_support import PROCESSOR, remq_at

pytestmark = pytest.mark.redis


@pytest.fixture
def ran(redis_url, prefix) -> dict[str, str]:
    """A job that waited ~0.3 s (delayed) and ran ~0.25 s, one that failed, one waiting."""
    with remq_at(redis_url, prefix):
        tm = TaskManager.init(db=redis_url, prefix=prefix, processor=PROCESSOR)  # type: ignore[arg-type]

        async def slow(task: Any, ctx: Any) -> None:
            await asyncio.sleep(0.25)

        async def bad(task: Any, ctx: Any) -> None:
            raise RuntimeError("boom")

        tm.register_handler("slow", slow, queue="mail")
        tm.register_handler("bad", bad, queue="mail", options={"attempts": 0})
        ids = {"slow": tm.emit("slow", queue="mail", options={"delay_ms": 300}),
               "bad": tm.emit("bad", queue="mail")}
        sdk = Sdk(redis_url, prefix=prefix)

        async def work() -> None:
            await tm.start()
            deadline = time.monotonic() + 20
            while sdk.get_queue_stats("mail").completed < 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            await tm.stop()

        asyncio.run(work())
        ids["waiting"] = tm.emit("slow", queue="mail")
        tm.conn.close()
        yield ids


def seconds(label: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+) (ms|s|min|h)", label).groups()  # type: ignore[union-attr]
    return float(number) * {"ms": 0.001, "s": 1, "min": 60, "h": 3600}[unit]


def test_job_page_shows_its_wait_and_run_time(admin_client, ran, redis_url, prefix):
    with remq_at(redis_url, prefix):
        page = admin_client.get(reverse("remq_admin:job", args=["mail", ran["slow"]]))
        html = page.content.decode()
        waited = re.search(r"<dt>Waited</dt><dd data-remq-wait>([^<]+?) <", html)
        took = re.search(r"<dt>Ran</dt><dd data-remq-run>([^<]+?) <", html)
        assert waited, html[:3000]
        assert took, html[:3000]
        # due 300 ms after its emit, started soon after it was due: the wait counts from due
        assert 0 <= seconds(waited[1]) < 1.5
        assert 0.25 <= seconds(took[1]) < 1.5
        waiting = admin_client.get(reverse("remq_admin:job", args=["mail", ran["waiting"]]))
        assert "<dt>Waiting for</dt>" in waiting.content.decode()
        assert "<dt>Ran</dt>" not in waiting.content.decode()


def test_list_columns_and_queue_chart(admin_client, ran, redis_url, prefix):
    with remq_at(redis_url, prefix):
        html = admin_client.get(reverse("remq_admin:jobs") + "?queue=mail").content.decode()
    assert ">Waited</th>" in html
    assert ">Ran</th>" in html
    row = html[html.index(f'data-job="{ran["slow"]}"'):]
    row = row[:row.index("</tr>")]
    run = re.search(r"data-remq-run>([^<]+)<", row)
    assert run is not None
    assert 0.25 <= seconds(run[1]) < 1.5
    # the queue's chart: this queue's one completed and one failed, its durations
    chart = html[html.index('<figure class="remq-trend"'):html.index("</figure>")]
    assert "Queue “mail”" in chart
    assert re.search(r'data-remq-trend="completed">1<', chart)
    assert re.search(r'data-remq-trend="failed">1<', chart)
    assert chart.count('class="remq-c"') == 1
    assert 'aria-label="Queue “mail”: 1 completed and 1 failed in the last 3 hours' in chart
    assert re.search(r"oldest waiting <strong data-remq-oldest>\d+ ms|\d.*s<", chart)


def test_queues_page_has_the_chart_and_durations(admin_client, ran, redis_url, prefix):
    with remq_at(redis_url, prefix):
        html = admin_client.get(reverse("remq_admin:queues")).content.decode()
        live = admin_client.get(reverse("remq_admin:live") + "?view=queues").json()["html"]
    for page in (html, live):  # the live refresh renders the same
        assert '<svg class="remq-chart"' in page
        assert "All queues: 1 completed and 1 failed in the last 3 hours" in page
        row = page[page.index('data-queue="mail"'):]
        row = row[:row.index("</tr>")]
        assert re.search(r"data-remq-oldest>[\d.]+ (ms|s)<", row)  # the waiting job
        runtime = re.search(r"data-remq-runtime>([^<]+) / ([^<]+)<", row)
        assert runtime is not None
        assert seconds(runtime[2]) >= 0.1  # p95 of a 0.25 s run and a fast failure


def test_durations_of_each_state():
    def job(status: str, **kw: Any) -> AdminJobData:
        return AdminJobData(id="j", state=JobState(name="e", queue="q", data=None, options={}),
                            status=JobStatus(status), timestamp=kw.pop("timestamp", 1_000),
                            **kw)

    now = 100_000
    done = job_durations(job("completed", last_run=3_000, finished_at=4_500), now)
    assert (done["wait_ms"], done["run_ms"], done["waiting"], done["running"]) == \
        (2_000, 1_500, False, False)
    delayed_run = job_durations(job("completed", delay_until=2_500, last_run=3_000,
                                    finished_at=3_100), now)
    assert delayed_run["wait_ms"] == 500  # counted from due, not from emitted
    running = job_durations(job("processing", last_run=90_000), now)
    assert (running["run"], running["running"]) == ("10 s", True)
    waiting = job_durations(job("waiting"), now)
    assert (waiting["wait_ms"], waiting["waiting"], waiting["run"]) == (99_000, True, "")
    assert job_durations(job("delayed", delay_until=200_000), now)["wait"] == ""
    # an automatic retry: the wait of the last run counts from the previous failure
    err = JobError(message="x", type="E", traceback="", attempt=1, timestamp=50_000)
    retried = job_durations(job("completed", errors=[err], last_run=50_400,
                                finished_at=50_600), now)
    assert (retried["wait_ms"], retried["run_ms"]) == (400, 200)
    # failed for good: the wait and run of its last run (its error came at the end)
    final = job_durations(job("failed", errors=[err], last_run=49_000, finished_at=50_000), now)
    assert (final["wait_ms"], final["run_ms"]) == (48_000, 1_000)
    # waiting again after that failure: the wait so far, no run time of the old run
    again = job_durations(job("waiting", errors=[err], last_run=40_000), now)
    assert (again["wait_ms"], again["run"]) == (50_000, "")


def test_chart_bars_scale_and_escape():
    svg = str(trend_svg([0, 3, 0, 10], [0, 1, 0, 0], 1_800_000_000_000, "<b>q</b>"))
    assert svg.count('class="remq-c"') == 2
    assert svg.count('class="remq-f"') == 1
    assert "<b>" not in svg
    assert "&lt;b&gt;q&lt;/b&gt;: 13 completed and 1 failed in the last 4 minutes" in svg
    assert ">10<" in svg  # the scale's top: the busiest minute, rounded up (1, 2, 5, 10...)
    empty = str(trend_svg([0] * 180, [0] * 180, 1_800_000_000_000, "q"))
    assert "No job finished in the last 3 hours" in empty
    assert "<rect" not in empty
