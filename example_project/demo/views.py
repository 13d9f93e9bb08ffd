"""Pages: buttons that emit each demo task and the latest jobs; the live report page
(progress over the WebSocket gateway); the staff-only live feed of every task."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required, user_passes_test
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


@login_required
def live(request: HttpRequest) -> HttpResponse:
    """Click "generate report": the page emits it over the WebSocket and follows it."""
    return render(request, "demo/live.html")


@user_passes_test(lambda user: user.is_active and user.is_staff, login_url="login")
def feed(request: HttpRequest) -> HttpResponse:
    """Every task's events as they happen (a broadcast connection: staff only)."""
    return render(request, "demo/feed.html")


@require_POST
def emit_task(request: HttpRequest, event: str) -> HttpResponse:
    if event not in DEMO_TASKS:
        raise Http404(event)
    emit(event, data=DEMO_TASKS[event])  # returns the id at once; enqueued on commit
    return redirect("index")


def recent_jobs(queue: str = "default", limit: int = 15) -> list[Any]:
    """Latest jobs of every status, newest first (the Sdk reads the per-status indexes)."""
    return Sdk().list_jobs(queue=queue, limit=limit)
