"""The Dead letters page: jobs that failed for good, with reason and error; requeue/delete."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from ..core.errors import MalformedMessage
from ..core.sdk.dead_letters import DLQ_ENTRY_ID
from ..core.store.keys import validate_queue_name
from . import audit
from .access import get_sdk, page_context, remq_view
from .confirm import ask, confirmed, safe_next
from .paging import fetched, paginate
from .present import Stamps, dead_letter, plural

FRAGMENT = "remq_admin/_dead_letters.html"
PER_PAGE = 50
#: The reasons the engine writes (an entry written by hand may say anything).
REASONS = ("no_retries", "retries_exhausted", "retry_refused", "poison", "malformed",
           "corrupt", "unknown_event")
#: A filtered view (reason, search) looks at this many dead letters, newest first, and
#: says so when there were more: each entry carries its job's record, so reading is bounded.
SCAN = 200
#: Dead letters one "Requeue all" click puts back (it says how many are left).
REQUEUE_BATCH = 1000


def filters(params: QueryDict) -> tuple[str | None, str | None, str]:
    """(queue, reason, search): a queue name that is no queue's is dropped, not a 500."""
    queue = params.get("queue") or None
    if queue is not None:
        try:
            validate_queue_name(queue)
        except ValueError:
            queue = None
    reason = (params.get("reason") or "").strip()[:50] or None
    return queue, reason, (params.get("q") or "").strip()[:100]


def context(request: HttpRequest, params: QueryDict) -> dict[str, Any]:
    """Unfiltered: two round trips (the queue registry, then each queue's DLQ length and
    page). Filtered: the newest ``SCAN`` entries (of the queue), filtered here."""
    sdk = get_sdk()
    url = reverse("remq_admin:dead_letters")
    queue, reason, q = filters(params)
    keep = {"queue": queue, "reason": reason, "q": q}
    scanned = None
    if queue or reason or q:
        names = sdk.get_queues()
        seen = sdk.list_dlq(limit=SCAN, queue=queue) if not queue or queue in names else []
        needle = q.lower()
        matching = [e for e in seen if (reason is None or e.reason == reason) and (
            not needle or any(needle in x.lower() for x in (e.id, e.name, e.error, e.entry_id)))]
        total = len(matching)
        pager = paginate(params.get("page"), PER_PAGE, total=total, base_url=url, params=keep)
        entries = matching[pager.offset:pager.offset + PER_PAGE + 1]
        scanned = {"n": len(seen), "more": len(seen) == SCAN}
    else:
        asked = paginate(params.get("page"), PER_PAGE, total=None, base_url=url, params={})
        total, entries, names = sdk.dlq_page_with_queues(limit=PER_PAGE + 1,
                                                         offset=asked.offset)
        pager = paginate(params.get("page"), PER_PAGE, total=total, base_url=url, params={})
        if pager.offset != asked.offset:  # a page past the end: show the last one
            total, entries = sdk.dlq_page(limit=PER_PAGE + 1, offset=pager.offset)
    pager = fetched(pager, len(entries))
    stamps = Stamps()
    return {"entries": [dead_letter(e, stamps) for e in entries[:PER_PAGE]], "pager": pager,
            "total": total, "summary": {"dlq": total}, "queue": queue, "reason": reason,
            "q": q, "queue_names": names, "reasons": REASONS, "scanned": scanned,
            "filtered": bool(queue or reason or q)}


@remq_view()
def dead_letters(request: HttpRequest) -> HttpResponse:
    ctx = page_context(request, "Dead letters", live="dead_letters", fragment=FRAGMENT,
                       **context(request, request.GET))
    return TemplateResponse(request, "remq_admin/dead_letters.html", ctx)


@remq_view(methods=("POST",))
def dead_letters_action(request: HttpRequest) -> HttpResponse:
    back = safe_next(request, reverse("remq_admin:dead_letters"))
    action = request.POST.get("action", "")
    ids = request.POST.getlist("_selected")
    if request.POST.get("only"):  # a row's own button: that entry alone
        action, _, one = request.POST["only"].partition(":")
        ids = [one]
    ids = [i for i in ids if DLQ_ENTRY_ID.match(i)]
    if action in ("requeue_all", "purge"):
        return _whole_queue(request, action, back)
    if action not in ("requeue", "delete"):
        messages.error(request, "Choose an action: requeue or delete.")
        return redirect(back)
    if not ids:
        messages.warning(request, "Select one or more dead letters first; nothing was changed.")
        return redirect(back)
    if action == "delete" and not confirmed(request):
        single = len(ids) == 1
        return ask(request, title=f"Delete {plural(len(ids), 'dead letter')}",
                   question=("Delete this dead letter? Its job will not run again." if single
                             else f"Delete these {len(ids)} dead letters? Their jobs will "
                                  "not run again."),
                   items=ids, button="Yes, delete it" if single else "Yes, delete them",
                   back_url=back)
    done, problems = _each(action, ids)
    verb = "requeued" if action == "requeue" else "deleted"
    messages.success(request, f"{plural(len(done), 'dead letter')} {verb}.")
    audit.record_many(request, audit.DEAD_LETTER, [(e, e) for e in done],
                      "Requeued its job" if action == "requeue" else "Deleted",
                      audit.CHANGE if action == "requeue" else audit.DELETION)
    gone = len(ids) - len(done) - len(problems)
    if gone:
        messages.warning(request, f"{plural(gone, 'entry', 'entries')} "
                         f"{'was' if gone == 1 else 'were'} already gone.")
    for problem in problems[:5]:
        messages.error(request, problem)
    return redirect(back)


def _each(action: str, ids: list[str]) -> tuple[list[str], list[str]]:
    """Requeue or delete each entry: the ids done, and the problems met."""
    sdk = get_sdk()
    done: list[str] = []
    problems: list[str] = []
    for entry_id in ids:
        try:
            ok = (sdk.requeue_dlq(entry_id) is not None if action == "requeue"
                  else sdk.delete_dlq(entry_id))
        except MalformedMessage as exc:
            problems.append(str(exc))
            continue
        if ok:
            done.append(entry_id)
    return done, problems


def _whole_queue(request: HttpRequest, action: str, back: str) -> HttpResponse:
    """Requeue (up to ``REQUEUE_BATCH`` a click) or purge every dead letter of one queue:
    asked first with the count, then recorded in the audit trail."""
    queue, _, _ = filters(request.POST)
    if queue is None:
        messages.error(request, "Pick a queue first (the filter above the list); nothing "
                       "was changed.")
        return redirect(back)
    sdk = get_sdk()
    if not confirmed(request):
        n = len(sdk.list_dlq(limit=REQUEUE_BATCH, queue=queue))
        if not n:
            messages.info(request, f"No dead letters in “{queue}”; nothing to do.")
            return redirect(back)
        many = f"{n}+" if n == REQUEUE_BATCH else str(n)
        if action == "purge":
            return ask(request, title="Purge dead letters",
                       question=f"Delete every dead letter of queue “{queue}” ({many})? "
                                "Their jobs will not run again; the jobs' records stay.",
                       items=[], button="Yes, purge them", back_url=back)
        batch = f" (the newest {n} this time)" if n == REQUEUE_BATCH else ""
        return ask(request, title="Requeue dead letters",
                   question=f"Run the jobs of {plural(n, 'dead letter')} of queue "
                            f"“{queue}” again{batch}?",
                   items=[], button="Yes, requeue them", back_url=back)
    if action == "purge":
        n = sdk.purge_dlq(queue)
        messages.success(request, f"{plural(n, 'dead letter')} of “{queue}” deleted.")
        audit.record(request, audit.QUEUE, queue, queue,
                     f"Purged its dead letters ({plural(n, 'entry', 'entries')})",
                     audit.CHANGE)
        return redirect(back)
    done = 0
    for entry in sdk.list_dlq(limit=REQUEUE_BATCH, queue=queue):
        try:
            done += sdk.requeue_dlq(entry.entry_id) is not None
        except MalformedMessage:
            continue  # an entry written by hand naming no job: left for a delete
    left = sdk.list_dlq(limit=1, queue=queue)
    messages.success(request, f"{plural(done, 'dead letter')} of “{queue}” requeued"
                     + (" (more remain: requeue again)." if left else "."))
    audit.record(request, audit.QUEUE, queue, queue,
                 f"Requeued its dead letters ({plural(done, 'job')})")
    return redirect(back)
