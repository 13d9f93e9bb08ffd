"""Destructive actions ask first: the same POST, replayed from a confirmation page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme

from .access import page_context


def confirmed(request: HttpRequest) -> bool:
    return request.POST.get("confirm") == "yes"


def safe_next(request: HttpRequest, default: str) -> str:
    """Where to go after an action: the form's ``next`` if it is on this site."""
    target = request.POST.get("next") or ""
    ok = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                         require_https=request.is_secure())
    return target if target and ok else default


def ask(request: HttpRequest, *, title: str, question: str, items: list[str],
        button: str, back_url: str) -> HttpResponse:
    """The confirmation page: lists what will change, re-posts the form with confirm=yes."""
    hidden = [(key, value) for key in request.POST if key not in ("csrfmiddlewaretoken",
                                                                    "confirm")
              for value in request.POST.getlist(key)]
    ctx = page_context(request, title, question=question, items=items[:100],
                       more=max(0, len(items) - 100), hidden=hidden, button=button,
                       back_url=safe_next(request, back_url))
    return TemplateResponse(request, "remq_admin/confirm.html", ctx)
