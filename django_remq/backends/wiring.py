"""Hooks a TaskManager up to the configured ``RemqBackend``s, so ``runworker_remq`` runs
Django tasks alongside ``@handler`` ones with no extra flag: each backend's QUEUES are
served, and a task met there is found by its module path (:func:`.runner.resolver`).
:func:`register_task_backends` is a build hook of :mod:`django_remq.api`, added by
``AppConfig.ready``; the backend modules load only when ``TASKS`` names a RemqBackend
(they need the Tasks framework).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from ..core import TaskManager

log = logging.getLogger("django_remq.tasks")


def remq_backends() -> list[tuple[str, dict[str, Any]]]:
    """``(alias, params)`` of every ``TASKS`` entry whose BACKEND is a RemqBackend."""
    configured = getattr(settings, "TASKS", None)
    if not isinstance(configured, dict):
        return []
    found = []
    for alias, params in configured.items():
        path = params.get("BACKEND") if isinstance(params, dict) else None
        if not isinstance(path, str):
            continue
        try:  # without the Tasks framework, RemqBackend raises ImproperlyConfigured: loud
            cls = import_string(path)
        except ImportError:
            continue  # the framework (or its checks) reports a BACKEND that does not import
        from .backend import RemqBackend

        if isinstance(cls, type) and issubclass(cls, RemqBackend):
            found.append((alias, params))
    return found


def register_task_backends(tm: TaskManager) -> None:
    backends = remq_backends()
    if not backends:
        return
    from .options import known_tasks
    from .runner import register_task, resolver

    resolve = resolver(tm, {alias for alias, _ in backends})
    for alias, params in backends:
        queues = params.get("QUEUES", ["default"])
        for queue in queues or [None]:
            try:
                tm.register_resolver(queue, resolve)
            except ValueError as exc:  # check() reports it (remq.E104)
                log.warning("TASKS queue %r not served: %s", queue, exc)
        for task in known_tasks(alias):  # imported already: the worker's banner lists them
            if not queues or task.queue_name in queues:
                register_task(tm, task)
