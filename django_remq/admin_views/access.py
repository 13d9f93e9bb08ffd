"""Who may see the pages, how they reach Redis, and what a Redis outage looks like.

:func:`remq_view` is the one wrapper every view goes through: staff only (the admin's
own ``admin_view``: login redirect, CSRF, never cached), then ``REMQ["ADMIN_PERMISSION"]``
(a dotted path to ``callable(request) -> bool``), then the allowed HTTP methods (so a GET
can never reach an action). A Redis that does not answer renders an error page in the
admin's look (HTTP 503) instead of a 500 with a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
    QueryDict,
)
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.module_loading import import_string

from ..conf import get_settings, raw_settings
from ..core.store.connection import describe
from ..core.store.keys import validate_queue_name
from ..redis_clients import UNREACHABLE
from ..sdk import Sdk, shared_sdk

log = logging.getLogger("django_remq.admin")

View = Callable[..., HttpResponse]

#: Where ``django_remq.routing`` mounts the gateway (the pages add ``?broadcast=1``).
GATEWAY_PATH = "/ws/remq/"

#: The pages' own timeouts (s; a URL's query wins): a blackholed Redis turns into the
#: error page in seconds, not a hung request, while a slow page still gets its reply.
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 3.0, 10.0


def get_sdk() -> Sdk:
    """The pages' Sdk: one per process and ``REMQ`` value, with the pages' timeouts."""
    return shared_sdk(socket_timeout=READ_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S)


def has_permission(request: HttpRequest) -> bool:
    """Staff (checked by ``admin_view``) and, if set, ``REMQ["ADMIN_PERMISSION"](request)``."""
    user = getattr(request, "user", None)
    if user is None or not (user.is_active and user.is_staff):
        return False
    path = get_settings().admin_permission
    return True if not path else bool(import_string(path)(request))


def page_context(request: HttpRequest, title: str, *, live: str | None = None,
                 live_params: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """The admin's own context (header, sidebar, theme toggle) plus the page's; ``live``
    names the page for the live endpoint, which gets ``live_params`` (default: the
    page's own query string)."""
    live_url = None
    if live is not None:
        query = QueryDict(mutable=True)
        query.update(live_params if live_params is not None else request.GET)
        query["view"] = live
        live_url = f"{reverse('remq_admin:live')}?{query.urlencode()}"
    return {**admin.site.each_context(request), "title": title, "live_url": live_url,
            "live_socket": gateway_path() if live is not None else None,
            "remq_page": live, **extra}


def gateway_path() -> str | None:
    """The gateway's WebSocket path when this project runs it, else ``None`` (the pages
    then poll). The signal: ``REMQ["GATEWAY"]`` set and a channel layer configured, the
    two things without which workers send no live events at all (``remq.W020``). The
    route itself lives in the ASGI application, which a WSGI process cannot see, so the
    browser checks that part: a socket that does not open leaves the page polling."""
    raw = raw_settings()
    if not isinstance(raw, dict) or raw.get("GATEWAY") is None:
        return None
    if "default" not in (getattr(settings, "CHANNEL_LAYERS", None) or {}):
        return None
    return GATEWAY_PATH


def redis_down(request: HttpRequest, exc: Exception, *, as_json: bool = False) -> HttpResponse:
    where = describe(get_settings().redis_url)
    log.warning("admin page %s: Redis at %s unreachable: %s", request.path, where, exc)
    if as_json:
        return JsonResponse({"error": f"Redis at {where} is not reachable"}, status=503)
    ctx = page_context(request, "Redis is not reachable", where=where,
                       error=f"{type(exc).__name__}: {exc}")
    return TemplateResponse(request, "remq_admin/redis_down.html", ctx, status=503)


def not_found(request: HttpRequest, exc: Http404, *, as_json: bool = False,
              queue: str | None = None) -> HttpResponse:
    """A missing job, queue or action: a 404 page inside the admin, not Django's bare one."""
    what = str(exc) or "There is nothing at this address."
    what = what[0].upper() + what[1:]
    if as_json:
        return JsonResponse({"error": what}, status=404)
    try:
        validate_queue_name(queue or "")
    except ValueError:
        queue = None
    ctx = page_context(request, "Not found", what=what if what.endswith(".") else what + ".",
                       queue=queue)
    response = TemplateResponse(request, "remq_admin/not_found.html", ctx, status=404)
    response.render()
    return response


def remq_view(methods: tuple[str, ...] = ("GET",), *, as_json: bool = False
              ) -> Callable[[View], View]:
    """Wrap a page or action: staff + permission + methods + Redis-down page."""
    def decorate(view: View) -> View:
        @wraps(view)
        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                return HttpResponseNotAllowed(methods)
            if not has_permission(request):
                raise PermissionDenied("REMQ['ADMIN_PERMISSION'] refused this user")
            try:
                response = view(request, *args, **kwargs)
                if isinstance(response, TemplateResponse):
                    response.render()  # Redis errors raised while rendering land here too
                return response
            except UNREACHABLE as exc:
                return redis_down(request, exc, as_json=as_json)
            except Http404 as exc:  # in the admin's look, saying what is missing
                return not_found(request, exc, as_json=as_json,
                                 queue=kwargs.get("queue") or request.GET.get("queue"))

        wrapped: list[View] = []

        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not wrapped:  # admin.site is resolved at the first request, not at import
                wrapped.append(admin.site.admin_view(inner))
            return wrapped[0](request, *args, **kwargs)

        return guarded

    return decorate


def queue_or_404(queue: str) -> str:
    """A queue name from a URL, or the admin's 404 naming what is wrong with it."""
    try:
        return validate_queue_name(queue)
    except ValueError as exc:
        raise Http404(str(exc)) from None
