"""The app config: registers the system checks, plugs the optional parts into the
process's TaskManager (:mod:`.api`'s hooks) and imports every app's ``tasks.py``."""

from __future__ import annotations

import logging
import os
import sys

from django.apps import AppConfig, apps
from django.conf import settings
from django.utils.module_loading import autodiscover_modules

log = logging.getLogger("django_remq")

NO_AUTODISCOVER_ENV = "REMQ_NO_AUTODISCOVER"


class RemqConfig(AppConfig):
    name = "django_remq"
    verbose_name = "Task queues (remq)"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
        from .api import add_build_hook, set_event_sink
        from .backends.wiring import register_task_backends
        from .consumers.delivery import sink_for

        set_event_sink(sink_for)  # live task events to the gateway, if a channel layer is set
        add_build_hook(register_task_backends)  # Django Tasks (TASKS) run on the same workers

        if apps.is_installed("django.contrib.admin"):
            from django.contrib import admin

            from .admin_views.index import install

            install(admin.site)  # the "Task queue" section on the admin index

        module = tasks_module()
        if module and not autodiscover_disabled():
            autodiscover_modules(module)


def tasks_module() -> str | None:
    """``REMQ['TASKS_MODULE']`` read leniently: a bad REMQ is the checks' to report."""
    raw = getattr(settings, "REMQ", None)
    value = raw.get("TASKS_MODULE", "tasks") if isinstance(raw, dict) else "tasks"
    return value if isinstance(value, str) else None


def autodiscover_disabled() -> bool:
    """``runworker_remq --no-autodiscover`` (or ``REMQ_NO_AUTODISCOVER=1``) skips the import
    of ``tasks`` modules; it must be known before the apps are ready, hence argv."""
    if os.environ.get(NO_AUTODISCOVER_ENV, "") not in ("", "0"):
        return True
    return "runworker_remq" in sys.argv[1:3] and "--no-autodiscover" in sys.argv
