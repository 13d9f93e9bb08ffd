"""A job's large values: the job page shows the first 64 KiB of each (the Sdk cuts them in
Redis, :meth:`~django_remq.core.sdk.Sdk.get_job_preview`) and links here for the whole,
a JSON download. A GET that changes nothing, behind the same staff and permission
checks as every page (:func:`.access.remq_view`)."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.http import content_disposition_header

from ..core.sdk.bounded import JobPreview
from ..core.sdk.listings import VALUE_FIELDS
from .access import get_sdk, queue_or_404, remq_view

#: What the page says of each value it cut.
LABELS = {"data": "data", "result": "result", "progress": "last update", "errors": "errors"}


@remq_view()
def download(request: HttpRequest, queue: str, name: str, job_id: str) -> HttpResponse:
    """``name`` (data, result, progress or errors) of the job, as stored, byte for byte."""
    queue_or_404(queue)
    if name not in VALUE_FIELDS:
        raise Http404(f"no value {name!r}: one of {', '.join(VALUE_FIELDS)}")
    value = get_sdk().get_job_value(job_id, queue, name)
    if value is None:
        raise Http404(f"job {job_id!r} in queue {queue!r} has no {name} (deleted, expired, "
                      "or never set)")
    response = HttpResponse(value, content_type="application/json")
    safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in job_id)[:100]
    response["Content-Disposition"] = content_disposition_header(
        True, f"{safe_id}-{name}.json")
    response["X-Content-Type-Options"] = "nosniff"
    return response


def cut_values(preview: JobPreview, queue: str) -> dict[str, dict[str, Any]]:
    """What the job page shows of each value the preview cut: the part read, its size and
    the download's URL (the template shows these instead of the value)."""
    out = {}
    for name, cut in preview.cuts.items():
        if name not in VALUE_FIELDS:
            continue
        out[name] = {"label": LABELS[name], "part": cut.part, "size": cut.size,
                     "shown": len(cut.part.encode()), "from_end": name in ("errors", "progress"),
                     "url": reverse("remq_admin:download", args=[queue, name, preview.job.id])}
    return out
