"""The audit trail: every action taken in the pages goes into Django admin's ``LogEntry``
(user, object, what), so it shows in "Recent actions" as any admin change does.

``LogEntry`` needs a content type, and ours has no model (the pages read Redis). So the
trail uses content types of their own, ``("remq_admin", "job")``, ``("remq_admin",
"queue")``, ``("remq_admin", "dead letter")``, made on first use in Django's own table
(no model or migration of ours). Their app label is no installed app's, so
``remove_stale_contenttypes`` leaves them (and the entries pointing at them) alone; only
``--include-stale-apps`` would remove them with their entries.

Recording never fails an action that was done: a database error is logged, not raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.contrib.admin import AdminSite
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.admin.utils import unquote
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.http import urlencode

log = logging.getLogger("django_remq.admin")

APP_LABEL = "remq_admin"
JOB, QUEUE, DEAD_LETTER = "job", "queue", "dead letter"
__all__ = ["ADDITION", "CHANGE", "DEAD_LETTER", "DELETION", "JOB", "QUEUE", "job_label", "record",
           "record_many"]


def content_type_id(kind: str) -> int:
    """The content type standing for ``kind`` (one query; actions are rare, and a cached
    id would outlive a rolled-back row)."""
    ct, _ = ContentType.objects.get_or_create(app_label=APP_LABEL, model=kind)
    return int(ct.pk)


def record(request: HttpRequest, kind: str, object_id: str, label: str, message: str,
           flag: int = CHANGE) -> None:
    """One action on one object: ``label`` is what "Recent actions" shows of it."""
    record_many(request, kind, [(object_id, label)], message, flag)


def record_many(request: HttpRequest, kind: str, objects: Iterable[tuple[str, str]],
                message: str, flag: int = CHANGE) -> None:
    """One entry per object (``(object id, label)``), written in one query."""
    user_id = getattr(getattr(request, "user", None), "pk", None)
    objects = list(objects)
    if user_id is None or not objects:
        return
    try:
        ct = content_type_id(kind)
        LogEntry.objects.bulk_create([
            LogEntry(user_id=user_id, content_type_id=ct, object_id=object_id,
                     object_repr=label[:200], action_flag=flag, change_message=message)
            for object_id, label in objects])
    except DatabaseError:
        log.exception("audit trail: %s by user %s on %d %s(s) not recorded", message,
                      user_id, len(objects), kind)


def job_label(queue: str, job_id: str) -> str:
    return f"{job_id} (queue {queue})"


def object_url(kind: str, object_id: str) -> str | None:
    """Where an audit entry's object lives in the pages (its link in "Recent actions")."""
    try:
        if kind == JOB:
            queue, _, job_id = object_id.partition("/")
            return reverse("remq_admin:job", args=[queue, job_id]) if job_id else None
        if kind == QUEUE:
            return f"{reverse('remq_admin:jobs')}?{urlencode({'queue': object_id})}"
        if kind == DEAD_LETTER:
            queue = object_id.partition(":")[0]
            return (f"{reverse('remq_admin:dead_letters')}?{urlencode({'queue': queue})}"
                    f"#{object_id}")
    except NoReverseMatch:  # the pages are not mounted
        return None
    return None


def link_urls(site: AdminSite) -> list[URLPattern]:
    """URLs in ``site``'s namespace named as ``LogEntry.get_admin_url`` looks them up
    (``admin:<app label>_<model>_change``), each sending to the object's page, so entries
    in "Recent actions" are links as any admin change's are."""
    def follow(request: HttpRequest, object_id: str, kind: str) -> HttpResponse:
        url = object_url(kind, unquote(object_id))
        if url is None:
            raise Http404(f"no page for {kind} {unquote(object_id)!r}")
        return HttpResponseRedirect(url)

    return [path(f"remq-audit/{kind.replace(' ', '-')}/<path:object_id>/",
                 site.admin_view(follow), {"kind": kind},
                 name=f"{APP_LABEL}_{kind}_change") for kind in (JOB, QUEUE, DEAD_LETTER)]
