"""A "Task queue" section on the admin index and in its sidebar -- without models.

The admin lists apps from ``AdminSite.get_app_list(request)`` (the index page and the
``available_apps`` of every admin page's sidebar). :func:`install` wraps that method on
one site *instance* (``admin.site`` by default, done by the app config when
``django.contrib.admin`` is installed) to append one section whose rows link to the
pages. Nothing else changes: no template override (a project's own ``admin/index.html``
keeps working), no subclassing of the project's site. The section appears only when the
URLs are mounted and the user may see the pages. A custom ``AdminSite`` gets it with
``install(my_site)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.contrib.admin import AdminSite
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

log = logging.getLogger("django_remq.admin")

APP_LABEL = "remq"
PAGES = (("queues", "Queues"), ("jobs", "Jobs"), ("dead_letters", "Dead letters"),
         ("workers", "Workers"))


def section(request: HttpRequest) -> dict[str, Any] | None:
    """The admin app-list entry, or ``None`` (URLs not mounted, or not allowed)."""
    from .access import has_permission

    try:
        urls = {name: reverse(f"remq_admin:{name}") for name, _ in PAGES}
        index = reverse("remq_admin:index")
    except NoReverseMatch:
        return None
    try:
        allowed = has_permission(request)
    except Exception:  # a broken ADMIN_PERMISSION must not take the whole admin index down
        log.exception("REMQ['ADMIN_PERMISSION'] raised; the Task queue section is hidden")
        return None
    if not allowed:
        return None
    models = [{"name": label, "object_name": f"Remq{name.title().replace('_', '')}",
               "perms": {"add": False, "change": False, "delete": False, "view": True},
               "admin_url": urls[name], "add_url": None, "view_only": True}
              for name, label in PAGES]
    return {"name": "Task queue", "app_label": APP_LABEL, "app_url": index,
            "has_module_perms": True, "models": models}


def install(site: AdminSite) -> None:
    """Add the section to ``site``'s app list (idempotent)."""
    if getattr(site, "_remq_section_installed", False):
        return
    original: Callable[..., list[dict[str, Any]]] = site.get_app_list

    def get_app_list(request: HttpRequest, app_label: str | None = None
                     ) -> list[dict[str, Any]]:
        apps = original(request, app_label)
        if app_label is None:
            extra = section(request)
            if extra is not None:
                apps = sorted([*apps, extra], key=lambda a: str(a["name"]).lower())
        return apps

    site.get_app_list = get_app_list  # type: ignore[method-assign]
    original_urls: Callable[[], list[Any]] = site.get_urls

    def get_urls() -> list[Any]:
        from .audit import link_urls  # (the admin's URLs are built after the app loads)

        return [*link_urls(site), *original_urls()]  # before the admin's catch-all

    site.get_urls = get_urls  # type: ignore[method-assign]
    site._remq_section_installed = True  # type: ignore[attr-defined]
