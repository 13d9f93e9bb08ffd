"""One page: buttons that emit each demo task, and the latest jobs with their state."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from django_remq import emit, get_task_manager
from django_remq.core.store.records import decode
from django_remq.types import JobStatus

DEMO_TASKS: dict[str, dict[str, Any]] = {
    "send-welcome-email": {"email": "ada@example.com", "name": "Ada"},
    "fetch-weather": {"city": "Lyon"},
    "flaky-payment": {"amount": "12.50 EUR"},
    "generate-report": {"seconds_per_step": 1},
}


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/index.html", {"tasks": DEMO_TASKS, "jobs": recent_jobs()})


@require_POST
def emit_task(request: HttpRequest, event: str) -> HttpResponse:
    if event not in DEMO_TASKS:
        raise Http404(event)
    emit(event, data=DEMO_TASKS[event])  # returns the id at once; enqueued on commit
    return redirect("index")


def recent_jobs(queue: str = "default", limit: int = 15) -> list[Any]:
    """Latest jobs of every status, straight from the per-status indexes (the admin
    pages use the Sdk for this)."""
    tm = get_task_manager()
    qk, client = tm.keys.queue(queue), tm.conn.sync
    scored: list[tuple[float, str]] = []
    for status in JobStatus:
        for job_id, score in client.zrevrange(qk.status(status), 0, limit - 1, withscores=True):
            scored.append((score, job_id))
    jobs = []
    for _, job_id in sorted(scored, reverse=True)[:limit]:
        fields = client.hgetall(qk.job(job_id))
        if fields:
            jobs.append(decode(fields))
    return jobs
