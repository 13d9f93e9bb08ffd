"""One page: buttons that emit each demo task, and the latest jobs with their state."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from django_remq import Sdk, emit

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
    """Latest jobs of every status, newest first (the Sdk reads the per-status indexes)."""
    return Sdk().list_jobs(queue=queue, limit=limit)
