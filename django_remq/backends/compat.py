"""The Tasks framework's names: Django 6's ``django.tasks``, else the ``django-tasks``
backport (Django 5.2), else a clear error. Everything else imports them from here.

Loaded by name (not ``from ... import``) so one module type-checks on both stacks.
"""

from __future__ import annotations

import importlib
from typing import Any

from django.core.exceptions import ImproperlyConfigured

NEEDS_FRAMEWORK = (
    "django_remq.backends.RemqBackend needs Django's Tasks framework: Django 6 "
    "(django.tasks), or on Django 5.2 the django-tasks backport (pip install "
    "'django-remq[tasks]' and add 'django_tasks' to INSTALLED_APPS).")

#: name here -> (module, attribute) in django.tasks / in the backport
_WHERE: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "Task": (("django.tasks.base", "Task"), ("django_tasks.base", "Task")),
    "TaskContext": (("django.tasks.base", "TaskContext"), ("django_tasks.base", "TaskContext")),
    "TaskError": (("django.tasks.base", "TaskError"), ("django_tasks.base", "TaskError")),
    "TaskResult": (("django.tasks.base", "TaskResult"), ("django_tasks.base", "TaskResult")),
    "TaskResultStatus": (("django.tasks.base", "TaskResultStatus"),
                         ("django_tasks.base", "TaskResultStatus")),
    "task_backends": (("django.tasks", "task_backends"), ("django_tasks", "task_backends")),
    "BaseTaskBackend": (("django.tasks.backends.base", "BaseTaskBackend"),
                        ("django_tasks.backends.base", "BaseTaskBackend")),
    "InvalidTask": (("django.tasks.exceptions", "InvalidTask"),
                    ("django_tasks.exceptions", "InvalidTaskError")),
    "TaskResultDoesNotExist": (("django.tasks.exceptions", "TaskResultDoesNotExist"),
                               ("django_tasks.exceptions", "TaskResultDoesNotExist")),
    "task_enqueued": (("django.tasks.signals", "task_enqueued"),
                      ("django_tasks.signals", "task_enqueued")),
    "task_started": (("django.tasks.signals", "task_started"),
                     ("django_tasks.signals", "task_started")),
    "task_finished": (("django.tasks.signals", "task_finished"),
                      ("django_tasks.signals", "task_finished")),
    "normalize_json": (("django.utils.json", "normalize_json"),
                       ("django_tasks.utils", "normalize_json")),
    "task": (("django.tasks", "task"), ("django_tasks", "task")),
}


def _load() -> tuple[str, dict[str, Any]]:
    for n, framework in enumerate(("django.tasks", "django_tasks")):
        try:
            return framework, {name: getattr(importlib.import_module(where[n][0]), where[n][1])
                               for name, where in _WHERE.items()}
        except ImportError:
            continue
    raise ImproperlyConfigured(NEEDS_FRAMEWORK)


FRAMEWORK, _names = _load()
Task: Any = _names["Task"]
TaskContext: Any = _names["TaskContext"]
TaskError: Any = _names["TaskError"]
TaskResult: Any = _names["TaskResult"]
TaskResultStatus: Any = _names["TaskResultStatus"]
task_backends: Any = _names["task_backends"]
BaseTaskBackend: Any = _names["BaseTaskBackend"]
InvalidTask: Any = _names["InvalidTask"]
TaskResultDoesNotExist: Any = _names["TaskResultDoesNotExist"]
task_enqueued: Any = _names["task_enqueued"]
task_started: Any = _names["task_started"]
task_finished: Any = _names["task_finished"]
normalize_json: Any = _names["normalize_json"]
task: Any = _names["task"]

__all__ = [
    "FRAMEWORK", "BaseTaskBackend", "InvalidTask", "Task", "TaskContext", "TaskError",
    "TaskResult", "TaskResultDoesNotExist", "TaskResultStatus", "normalize_json", "task",
    "task_backends", "task_enqueued", "task_finished", "task_started",
]
