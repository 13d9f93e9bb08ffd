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
from . import audit
from .access import get_sdk, page_context, remq_view
from .confirm import ask, confirmed, safe_next
from .paging import fetched, paginate
from .present import Stamps, dead_letter, plural

FRAGMENT = "remq_admin/_dead_letters.html"
PER_PAGE = 50


def context(request: HttpRequest, params: QueryDict) -> dict[str, Any]:
    """Two round trips: the queue registry, then each queue's DLQ length and page."""
    sdk = get_sdk()
    url = reverse("remq_admin:dead_letters")
    asked = paginate(params.get("page"), PER_PAGE, total=None, base_url=url, params={})
    total, entries = sdk.dlq_page(limit=PER_PAGE + 1, offset=asked.offset)
    pager = paginate(params.get("page"), PER_PAGE, total=total, base_url=url, params={})
    if pager.offset != asked.offset:  # a page past the end: show the last one
        total, entries = sdk.dlq_page(limit=PER_PAGE + 1, offset=pager.offset)
    pager = fetched(pager, len(entries))
    stamps = Stamps()
    return {"entries": [dead_letter(e, stamps) for e in entries[:PER_PAGE]], "pager": pager,
            "total": total, "summary": {"dlq": total}}


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
