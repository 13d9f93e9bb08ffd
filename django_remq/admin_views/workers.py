"""The Workers page: live workers from their heartbeats, and the cron schedules."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from ..core.errors import InvalidOptions
from ..decorators import registry
from . import audit
from .access import get_sdk, page_context, queue_or_404, remq_view
from .present import Stamps, worker

FRAGMENT = "remq_admin/_workers.html"


def _repeat(options: dict[str, Any]) -> str:
    repeat = options.get("repeat") or {}
    text = repeat.get("pattern") or (f"every {repeat['every_ms']} ms"
                                     if repeat.get("every_ms") else "")
    return f"{text} (limit {repeat['limit']})" if text and repeat.get("limit") else text


def context(request: HttpRequest, params: QueryDict) -> dict[str, Any]:
    """Four round trips: worker ids, their heartbeats, queue names, the schedules."""
    sdk = get_sdk()
    stamps = Stamps()
    workers = [worker(w, stamps) for w in sdk.get_workers()]
    patterns = {(d.queue, d.event): _repeat(d.options) for d in registry}
    crons = [{"queue": c.queue, "event": c.event, "next_run": stamps.pair(c.next_run),
              "runs": c.runs,
              "pattern": patterns.get((c.queue, c.event), "")} for c in sdk.list_cron()]
    return {"workers": workers, "crons": crons,
            "summary": {"workers": len(workers),
                        "running": sum(w["busy"] for w in workers),
                        "capacity": sum(w["concurrency"] for w in workers)}}


@remq_view()
def workers(request: HttpRequest) -> HttpResponse:
    ctx = page_context(request, "Workers", live="workers", fragment=FRAGMENT,
                       **context(request, request.GET))
    return TemplateResponse(request, "remq_admin/workers.html", ctx)


@remq_view(methods=("POST",))
def cron_run_now(request: HttpRequest, queue: str, event: str) -> HttpResponse:
    """One run of a cron schedule's event now, as a job of its own (the schedule keeps
    its next tick): emitted as the project emits, recorded in the audit trail."""
    from ..emitting import emit  # the Django layer's one way to emit (REMQ settings)

    queue = queue_or_404(queue)
    if not any(c.queue == queue and c.event == event for c in get_sdk().list_cron([queue])):
        raise Http404(f"no cron schedule for event {event!r} in queue {queue!r}")
    try:
        job_id = emit(event, queue=queue, on_commit=False)
    except InvalidOptions as exc:
        messages.error(request, f"Could not run {event} now: {exc}.")
        return redirect(reverse("remq_admin:workers"))
    audit.record(request, audit.JOB, f"{queue}/{job_id}", audit.job_label(queue, job_id),
                 f"Run now from the cron schedule of {event}", audit.ADDITION)
    messages.success(request, f"{event} runs now as job {job_id}; its schedule keeps its "
                     "next run.")
    return redirect(reverse("remq_admin:job", args=[queue, job_id]))
