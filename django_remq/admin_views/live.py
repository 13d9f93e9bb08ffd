"""The pages' live refresh: one JSON endpoint that ``remq_admin/live.js`` polls every 2 s,
or, when the page follows the gateway's broadcast socket, fetches after task events (at
most every 500 ms) and every 10 s.

``GET live/?view=<page>&<the page's own query>`` re-renders the live part of that page
(the same template fragment and context builder the page itself uses, so the two cannot
drift) and returns ``{"html": ..., "summary": {...}, "at": ms}``. It reads exactly what
the page reads: the same bounded number of Redis round trips.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.template.loader import render_to_string

from . import dead_letters, job, jobs, queues, workers
from .access import remq_view

Builder = Callable[[HttpRequest, QueryDict], dict[str, Any]]
PAGES: dict[str, tuple[Builder, str]] = {
    "queues": (queues.context, queues.FRAGMENT),
    "jobs": (jobs.context, jobs.FRAGMENT),
    "job": (job.context, job.FRAGMENT),
    "dead_letters": (dead_letters.context, dead_letters.FRAGMENT),
    "workers": (workers.context, workers.FRAGMENT),
}


@remq_view(as_json=True)
def live(request: HttpRequest) -> HttpResponse:
    page = PAGES.get(request.GET.get("view", ""))
    if page is None:
        return JsonResponse({"error": f"view must be one of {', '.join(PAGES)}"}, status=400)
    build, fragment = page
    try:
        ctx = build(request, request.GET)
    except Http404 as exc:
        return JsonResponse({"error": str(exc)}, status=404)
    html = render_to_string(fragment, ctx, request=request)
    return JsonResponse({"html": html, "summary": ctx.get("summary", {}),
                         "at": int(time.time() * 1000)})
