"""The Job page and the one-job actions (retry, cancel, delete, pause, resume)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from ..core.errors import CorruptRecord, InvalidJobState
from . import audit
from .access import get_sdk, page_context, queue_or_404, remq_view
from .confirm import ask, confirmed
from .download import cut_values
from .present import DESTRUCTIVE, JOB_ACTIONS, corrupt_detail, job_detail

FRAGMENT = "remq_admin/_job.html"
#: What the audit trail says of each action (``LogEntry.change_message``).
AUDIT = {"retry": "Retried", "cancel": "Cancelled", "delete": "Deleted", "pause": "Paused",
         "resume": "Resumed", "run_now": "Run now (its delay dropped)"}


def context(request: HttpRequest, params: QueryDict, queue: str | None = None,
            job_id: str | None = None) -> dict[str, Any]:
    """One round trip: the record with its logs."""
    queue = queue_or_404(queue or params.get("queue", ""))
    job_id = job_id or params.get("job_id", "")
    try:
        preview = get_sdk().get_job_preview(job_id, queue) if job_id else None  # values cut
    except CorruptRecord as exc:  # said on the page (which offers Delete), never a 500
        return _corrupt(queue, job_id, exc)
    if preview is None:
        raise Http404(f"no job {job_id!r} in queue {queue!r} (deleted, or expired by the "
                      "retention settings)")
    detail = {**job_detail(preview.job), "cut": cut_values(preview, queue),
              "dead_letter": preview.dead_letter}
    return {"job": detail, "queue": queue, "job_id": job_id,
            "summary": {"status": detail["status"], "progress": detail["progress"]}}


def _corrupt(queue: str, job_id: str, exc: CorruptRecord) -> dict[str, Any]:
    """The context of a job whose record does not read: the same fragment shows the error
    (so the live refresh goes on), the page says what to do."""
    return {"job": corrupt_detail(job_id, queue, exc), "queue": queue, "job_id": job_id,
            "corrupt": str(exc), "summary": {"status": "corrupt", "progress": None}}


@remq_view()
def job(request: HttpRequest, queue: str, job_id: str) -> HttpResponse:
    ctx = context(request, request.GET, queue, job_id)
    live = {"queue": queue, "job_id": job_id}
    page = page_context(request, f"Job {job_id}", live="job", live_params=live,
                        fragment=FRAGMENT, **ctx)
    return TemplateResponse(request, "remq_admin/job.html", page)


@remq_view(methods=("POST",))
def job_action(request: HttpRequest, queue: str, job_id: str, action: str) -> HttpResponse:
    queue = queue_or_404(queue)
    if action not in JOB_ACTIONS:
        raise Http404(f"unknown job action {action!r}; one of {', '.join(JOB_ACTIONS)}")
    detail_url = reverse("remq_admin:job", args=[queue, job_id])
    if action in DESTRUCTIVE and not confirmed(request):
        what = ("Its record and logs are removed for good." if action == "delete"
                else "It will not run (a running job is asked to stop).")
        return ask(request, title=f"{action.capitalize()} job", items=[],
                   question=f"{action.capitalize()} job {job_id} in queue “{queue}”? {what}",
                   button=f"Yes, {action} it", back_url=detail_url)
    sdk = get_sdk()
    try:
        outcome: Any = {"retry": sdk.retry_job, "cancel": sdk.cancel_job,
                        "delete": sdk.delete_job, "pause": sdk.pause_job,
                        "resume": sdk.resume_job, "run_now": sdk.run_job_now}[action](job_id, queue)
    except InvalidJobState as exc:
        messages.error(request, f"{exc}.")
        return redirect(detail_url)
    except CorruptRecord as exc:  # the script ran; the record it answered does not read
        messages.warning(request, f"Job {job_id}: {action} done, but its record does not "
                         f"read: {exc}.")
        return redirect(detail_url)
    if outcome is None or outcome is False:
        messages.error(request, f"Job {job_id} in “{queue}” no longer exists.")
        return redirect(reverse("remq_admin:jobs") + f"?queue={queue}")
    audit.record(request, audit.JOB, f"{queue}/{job_id}", audit.job_label(queue, job_id),
                 AUDIT[action], audit.DELETION if action == "delete" else audit.CHANGE)
    if action == "delete":
        messages.success(request, f"Job {job_id} deleted.")
        return redirect(reverse("remq_admin:jobs") + f"?queue={queue}")
    done = {"retry": "sent to run again", "cancel": "cancelled (a running job stops at its "
            "worker's next heartbeat)", "pause": "paused", "resume": "resumed",
            "run_now": "sent to run now"}[action]
    messages.success(request, f"Job {job_id} {done}.")
    return redirect(detail_url)
