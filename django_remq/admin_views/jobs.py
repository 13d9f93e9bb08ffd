"""The Jobs page: newest first from the per-status indexes, search, bulk actions."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from ..core.errors import CorruptRecord, InvalidJobState
from ..core.sdk import listings
from ..core.sdk.listings import JobList
from ..core.store.keys import validate_queue_name
from ..types import JobStatus
from . import audit, trends
from .access import get_sdk, page_context, remq_view
from .confirm import ask, confirmed, safe_next
from .paging import fetched, paginate
from .present import DESTRUCTIVE, Stamps, corrupt_row, job_row, plural

STATUSES = tuple(s.value for s in JobStatus)
FINAL = tuple(s.value for s in JobStatus if s.final)


FRAGMENT = "remq_admin/_jobs.html"
PER_PAGE = 50
MAX_SEARCH = 100
BULK_ACTIONS = {"retry": "Retry selected jobs", "cancel": "Cancel selected jobs",
                "delete": "Delete selected jobs"}


def filters(params: QueryDict) -> tuple[str | None, str | None, str, str | None]:
    """(queue, status, search, problem): bad values are dropped with a message, not a 500."""
    queue = params.get("queue") or None
    status = params.get("status") or None
    q = (params.get("q") or "").strip()[:MAX_SEARCH]
    problem = None
    if queue is not None:
        try:
            validate_queue_name(queue)
        except ValueError as exc:
            queue, problem = None, str(exc)
    if status is not None and status not in STATUSES:
        problem = f"unknown status {status!r}; one of {', '.join(STATUSES)}"
        status = None
    return queue, status, q, problem


def context(request: HttpRequest, params: QueryDict) -> dict[str, Any]:
    """Round trips: 2 (queues and counts) + the listing (1 for one queue; a fixed few more
    across queues for deep pages), whatever the number of jobs. The rows read only what
    they show (no data or result: ``Sdk.list_job_rows``), whatever the size of the jobs."""
    queue, status, q, problem = filters(params)
    event = (params.get("event") or "").strip()[:MAX_SEARCH]
    in_data = params.get("data") == "1" and bool(q)
    searching = bool(q or event)
    # one queue's one status reads its index from either end: oldest first too
    sortable = bool(queue and status and not searching)
    oldest = sortable and params.get("order") == "oldest"
    sdk = get_sdk()
    infos = sdk.get_queues_info()
    shown = [i for i in infos if queue is None or i.name == queue]
    counts = {s: sum(getattr(i.stats, s) for i in shown) for s in STATUSES}
    total = None if searching else (counts[status] if status else sum(counts.values()))
    base = reverse("remq_admin:jobs")
    extra = {"event": event, "data": "1" if in_data else ""}
    pager = paginate(params.get("page"), PER_PAGE, total=total, base_url=base,
                     params={"queue": queue, "status": status, "q": q, **extra,
                             "order": "oldest" if oldest else None,
                             "before": params.get("before") if searching else None})
    before = _score(params.get("before")) if searching else None
    older_url = None
    jobs: JobList
    if not (shown or queue):
        jobs = JobList()
    elif searching:
        found = sdk.search_job_rows(q, queue, status, limit=PER_PAGE + 1, offset=pager.offset,
                                    before=before, in_data=in_data, event=event or None)
        jobs = found.jobs
        if found.older is not None and len(jobs) <= PER_PAGE:
            older_url = _url(base, queue, status, q, before=found.older, event=event,
                             data=extra["data"])
    else:
        jobs = sdk.list_job_rows(queue, status, limit=PER_PAGE + 1, offset=pager.offset,
                                 oldest=oldest)
    pager = fetched(pager, len(jobs) + len(jobs.corrupt))
    tabs = [{"status": None, "label": "All", "count": sum(counts.values()),
             "url": _url(base, queue, None, q, event=event, data=extra["data"]),
             "current": status is None}]
    tabs += [{"status": s, "label": s.capitalize(), "count": counts[s],
              "url": _url(base, queue, s, q, event=event, data=extra["data"]),
              "current": status == s} for s in STATUSES]
    stamps = Stamps()
    return {"jobs": [job_row(j, stamps) for j in jobs[:PER_PAGE]], "pager": pager, "tabs": tabs,
            # records that do not read: rows of their own, never a 500 for the page
            "corrupt": [corrupt_row(c.id, c.queue, c.error, stamps) for c in jobs.corrupt],
            "queue": queue, "status": status, "q": q, "problem": problem,
            "event": event, "in_data": in_data, "searching": searching,
            "order_url": f"{_url(base, queue, status, q)}{'' if oldest else '&order=oldest'}"
            if sortable else None, "oldest": oldest,
            "older_url": older_url, "searched_before": before,
            "search_window": listings.SEARCH_WINDOW,
            "queue_names": [i.name for i in infos], "statuses": STATUSES,
            "summary": {**counts, "total": sum(counts.values())},
            "bulk_actions": BULK_ACTIONS.items(),
            # "select all N matching": the bulk scripts take a queue's whole status
            "across": {"n": counts[status], "status": status}
            if status in FINAL and not searching and counts[status] > PER_PAGE else None,
            # one queue's page: its trend chart and durations (one round trip more)
            "chart": trends.for_queue(sdk, queue) if queue and shown else None}


def _url(base: str, queue: str | None, status: str | None, q: str, *,
         before: float | None = None, event: str = "", data: str = "") -> str:
    params = QueryDict(mutable=True)
    for key, value in (("queue", queue), ("status", status), ("q", q), ("event", event),
                       ("data", data), ("before", None if before is None else f"{before:.0f}")):
        if value:
            params[key] = value
    return f"{base}?{params.urlencode()}" if params else base


def _score(raw: str | None) -> float | None:
    """``?before=`` (where a search goes on, from the "search older" link); odd values
    start from the newest jobs, never an error."""
    try:
        return float(int(raw)) if raw else None
    except ValueError:
        return None


@remq_view()
def jobs(request: HttpRequest) -> HttpResponse:
    ctx = context(request, request.GET)
    if ctx["problem"]:
        messages.warning(request, f"Filter ignored: {ctx['problem']}.")
    title = f"Jobs in “{ctx['queue']}”" if ctx["queue"] else "Jobs"
    page = page_context(request, title, live="jobs", fragment=FRAGMENT, **ctx)
    return TemplateResponse(request, "remq_admin/jobs.html", page)


def selected(request: HttpRequest) -> list[tuple[str, str]]:
    """The ticked rows, as (queue, job id); values are ``queue:job_id``."""
    out = []
    for value in request.POST.getlist("_selected"):
        queue, sep, job_id = value.partition(":")
        if sep and job_id:
            try:
                out.append((validate_queue_name(queue), job_id))
            except ValueError:
                continue
    return out


@remq_view(methods=("POST",))
def jobs_bulk(request: HttpRequest) -> HttpResponse:
    back = safe_next(request, reverse("remq_admin:jobs"))
    action = request.POST.get("action", "")
    picked = selected(request)
    if action not in BULK_ACTIONS:
        messages.error(request, "Choose an action: retry, cancel or delete.")
        return redirect(back)
    if request.POST.get("select_across") == "1":
        return _across(request, action, back)
    if not picked:
        messages.warning(request, "Select one or more jobs first; nothing was changed.")
        return redirect(back)
    if action in DESTRUCTIVE and not confirmed(request):
        verb, one = ("Delete" if action == "delete" else "Cancel"), len(picked) == 1
        return ask(request, title=f"{verb} {plural(len(picked), 'job')}",
                   question=(f"{verb} this job? " if one else
                             f"{verb} these {len(picked)} jobs? ")
                            + ({"delete": "Its record and logs are removed for good.",
                                "cancel": "It will not run."} if one else
                               {"delete": "Their records and logs are removed for good.",
                                "cancel": "They will not run."})[action],
                   items=[f"{job_id} (queue {queue})" for queue, job_id in picked],
                   button=f"Yes, {action} them", back_url=back)
    done, refused = run_bulk(action, picked)
    if done:
        messages.success(request, f"{action.capitalize()}: {plural(len(done), 'job')}.")
        audit.record_many(request, audit.JOB,
                          [(f"{q}/{j}", audit.job_label(q, j)) for q, j in done],
                          f"{BULK_AUDIT[action]} (bulk action on {plural(len(picked), 'job')})",
                          audit.DELETION if action == "delete" else audit.CHANGE)
    if refused:
        messages.warning(request, f"Not changed ({len(refused)}): " + "; ".join(refused[:5])
                         + (" …" if len(refused) > 5 else ""))
    return redirect(back)


BULK_AUDIT = {"retry": "Retried", "cancel": "Cancelled", "delete": "Deleted"}


def run_bulk(action: str, picked: list[tuple[str, str]]
             ) -> tuple[list[tuple[str, str]], list[str]]:
    """The jobs changed, and why the others were not."""
    sdk = get_sdk()
    done: list[tuple[str, str]] = []
    refused: list[str] = []
    for queue, job_id in picked:
        try:
            if action == "retry":
                ok = sdk.retry_job(job_id, queue) is not None
            elif action == "cancel":
                ok = sdk.cancel_job(job_id, queue)
            else:
                ok = sdk.delete_job(job_id, queue)
        except InvalidJobState as exc:
            refused.append(str(exc))
            continue
        except CorruptRecord:  # done; only the record it answered does not read
            ok = True
        if ok:
            done.append((queue, job_id))
        else:
            refused.append(f"job {job_id} in {queue!r} no longer exists")
    return done, refused


def _across(request: HttpRequest, action: str, back: str) -> HttpResponse:
    """Every job of the page's queue (or all queues) and status, not only the ticked rows:
    retrying failed jobs or deleting finished ones, by the Sdk's bounded bulk scripts.
    Asked first with the count; audited per queue."""
    queue, status = request.POST.get("queue") or None, request.POST.get("status") or None
    if not ((action == "retry" and status == "failed")
            or (action == "delete" and status in FINAL)):
        messages.error(request, "“All matching” works for retrying failed jobs and deleting "
                       "finished ones (completed, failed, cancelled): filter by that status, "
                       "or tick rows instead. Nothing was changed.")
        return redirect(back)
    assert status is not None
    sdk = get_sdk()
    try:
        names = [validate_queue_name(queue)] if queue else sdk.get_queues()
    except ValueError as exc:
        messages.error(request, f"{exc}; nothing was changed.")
        return redirect(back)
    where = f"in “{queue}”" if queue else "in every queue"
    verb = "Retry" if action == "retry" else "Delete"
    if not confirmed(request):
        n = sum(getattr(sdk.get_queue_stats(q), status) for q in names)
        return ask(request, title=f"{verb} all {status} jobs",
                   question=f"{verb} all {plural(n, f'{status} job')} {where}? "
                            + ("Each runs again, keeping its errors and logs." if action ==
                               "retry" else "Their records and logs are removed for good."),
                   items=[], button=f"Yes, {action} all {n}", back_url=back)
    total = 0
    for name in names:
        n = (sdk.retry_all_failed(name) if action == "retry"
             else sdk.delete_completed_older_than(name, 0, status=status))
        total += n
        if n:
            audit.record(request, audit.QUEUE, name, name,
                         f"{verb} all {plural(n, f'{status} job')} (all matching)")
    messages.success(request, f"{verb}: {plural(total, f'{status} job')} {where}.")
    return redirect(back)
