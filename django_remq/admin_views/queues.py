"""The Queues page: counts per status, DLQ length, paused flag, throughput; queue actions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from ..types import JobStatus
from . import audit, trends
from .access import get_sdk, page_context, queue_or_404, remq_view
from .confirm import ask, confirmed, safe_next
from .present import plural

STATUSES = tuple(s.value for s in JobStatus)
FINAL_STATUSES = tuple(s.value for s in JobStatus if s.final)


FRAGMENT = "remq_admin/_queues.html"
MINUTE, HOUR = 60_000, 3_600_000
QUEUE_ACTIONS = ("pause", "resume", "retry_failed", "delete_finished")
UNITS = {"minutes": 60, "hours": 3600, "days": 86400}


def context(request: HttpRequest, params: QueryDict) -> dict[str, Any]:
    """Four round trips: the registry, every queue's counts, the throughput counts, the
    trends and durations (trends.py)."""
    sdk = get_sdk()
    infos = sdk.get_queues_info()
    finished = sdk.get_finished_counts([i.name for i in infos], (MINUTE, HOUR)) if infos else []
    by = {(f.queue, f.window_ms): f for f in finished}
    totals = {s: sum(getattr(i.stats, s) for i in infos) for s in STATUSES}
    # cancelled / paused columns only when some queue has such jobs (keeps the table narrow)
    shown = [s for s in STATUSES if s not in ("cancelled", "paused") or totals[s]]
    durations, chart = trends.for_queues(sdk, [i.name for i in infos])  # one round trip
    rows = [{"name": i.name, "paused": i.paused, "stats": i.stats,
             "counts": [(s, getattr(i.stats, s)) for s in shown],
             "windows": (by[(i.name, MINUTE)], by[(i.name, HOUR)]),
             "durations": durations.get(i.name)} for i in infos]
    dlq = sum(i.stats.dlq for i in infos)
    # names stored before the name rule refused them: no page of theirs can be linked
    unusable = [{"name": name, "why": why} for name, why in infos.unusable]
    return {"rows": rows, "statuses": shown, "totals": totals, "dlq": dlq,
            "unusable": unusable, "registry": sdk.keys.queues, "summary": {**totals, "dlq": dlq},
            "chart": chart}


@remq_view()
def queues(request: HttpRequest) -> HttpResponse:
    ctx = page_context(request, "Queues", live="queues", fragment=FRAGMENT,
                       **context(request, request.GET))
    return TemplateResponse(request, "remq_admin/queues.html", ctx)


def _older_than(request: HttpRequest) -> tuple[timedelta, str] | None:
    try:
        amount = int(request.POST.get("amount", ""))
    except ValueError:
        return None
    unit = request.POST.get("unit", "days")
    if amount < 0 or unit not in UNITS:
        return None
    return timedelta(seconds=amount * UNITS[unit]), f"{amount} {unit}"


@remq_view(methods=("POST",))
def queue_action(request: HttpRequest, queue: str, action: str) -> HttpResponse:
    queue_or_404(queue)
    if action not in QUEUE_ACTIONS:
        raise Http404(f"unknown queue action {action!r}")
    back = safe_next(request, reverse("remq_admin:queues"))
    sdk = get_sdk()
    if action == "pause":
        sdk.pause_queue(queue)
        messages.success(request, f"Queue “{queue}” paused: workers stop reading it.")
        audit.record(request, audit.QUEUE, queue, queue, "Paused the queue")
    elif action == "resume":
        sdk.resume_queue(queue)
        messages.success(request, f"Queue “{queue}” resumed.")
        audit.record(request, audit.QUEUE, queue, queue, "Resumed the queue")
    elif action == "retry_failed":
        return _retry_failed(request, queue, back)
    else:
        return _delete_finished(request, queue, back)
    return redirect(back)


def _retry_failed(request: HttpRequest, queue: str, back: str) -> HttpResponse:
    """Asks first, saying how many; nothing failed: says so and changes nothing."""
    sdk = get_sdk()
    if not confirmed(request):
        failed = sdk.get_queue_stats(queue).failed
        if not failed:
            messages.info(request, f"No failed jobs in “{queue}”; nothing to retry.")
            return redirect(back)
        return ask(request, title="Retry failed jobs",
                   question=f"Run the {plural(failed, 'failed job')} of queue “{queue}” "
                            "again? Each keeps its errors and logs; its dead letter goes.",
                   items=[], button=f"Yes, retry {plural(failed, 'job')}", back_url=back)
    n = sdk.retry_all_failed(queue)
    messages.success(request, f"{plural(n, 'failed job')} in “{queue}” sent to run again.")
    audit.record(request, audit.QUEUE, queue, queue,
                 f"Retried all failed jobs ({plural(n, 'job')})")
    return redirect(back)


def _delete_finished(request: HttpRequest, queue: str, back: str) -> HttpResponse:
    age = _older_than(request)
    status = request.POST.get("status", "completed")
    if age is None or status not in FINAL_STATUSES:
        messages.error(request, "Give an age as a whole number ≥ 0 of minutes, hours or days, "
                       "and a finished status (completed, failed or cancelled).")
        return redirect(back)
    older, label = age
    if not confirmed(request):
        return ask(request, title="Delete finished jobs",
                   question=f"Delete every {status} job in queue “{queue}” that finished "
                            f"more than {label} ago? Their records and logs are removed.",
                   items=[], button=f"Yes, delete {status} jobs", back_url=back)
    n = get_sdk().delete_completed_older_than(queue, older, status=status)
    messages.success(request, f"Deleted {plural(n, f'{status} job')} older than "
                     f"{label} from “{queue}”.")
    audit.record(request, audit.QUEUE, queue, queue,
                 f"Deleted {plural(n, f'{status} job')} finished more than {label} ago",
                 audit.CHANGE)
    return redirect(back)
