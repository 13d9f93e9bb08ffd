"""The Tasks framework's names: Django 6's ``django.tasks``, else the ``django-tasks``
backport (Django 5.2), else a clear error. Everything else imports them from here."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

NEEDS_FRAMEWORK = (
    "django_remq.backends.RemqBackend needs Django's Tasks framework: Django 6 "
    "(django.tasks), or on Django 5.2 the django-tasks backport (pip install "
    "'django-remq[tasks]' and add 'django_tasks' to INSTALLED_APPS).")

try:
    from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    FRAMEWORK = "django.tasks"
except ImportError:
    try:
        from django_tasks import (  # type: ignore[no-redef]
            TaskContext,
            TaskResult,
            TaskResultStatus,
            task_backends,
        )
        from django_tasks.base import Task  # type: ignore[no-redef]
        from django_tasks.backends.base import BaseTaskBackend  # type: ignore[no-redef]
        from django_tasks.base import TaskError  # type: ignore[no-redef]
        from django_tasks.exceptions import InvalidTaskError as InvalidTask  # type: ignore
        from django_tasks.exceptions import TaskResultDoesNotExist  # type: ignore[no-redef]
        from django_tasks.signals import (  # type: ignore[no-redef]
            task_enqueued,
            task_finished,
            task_started,
        )
        from django_tasks.utils import normalize_json  # type: ignore[no-redef]

        FRAMEWORK = "django_tasks"
    except ImportError:
        raise ImproperlyConfigured(NEEDS_FRAMEWORK) from None

__all__ = [
    "FRAMEWORK", "BaseTaskBackend", "InvalidTask", "Task", "TaskContext", "TaskError",
    "TaskResult", "TaskResultDoesNotExist", "TaskResultStatus", "normalize_json",
    "task_backends", "task_enqueued", "task_finished", "task_started",
]
