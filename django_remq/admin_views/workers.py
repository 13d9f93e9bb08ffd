"""The Workers page: live workers from their heartbeats, and the cron schedules."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict
from django.template.response import TemplateResponse

from ..decorators import registry
from .access import get_sdk, page_context, remq_view
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
