"""``task``: the Tasks framework's ``@task`` that takes remq's options on every Django.

Django 6.1 and the django-tasks backport hand extra ``@task`` keywords to the backend's
task class, so ``@task(attempts=3)`` from the framework itself works there. Django 6.0's
``task()`` takes no extra keywords: this one builds the task with the framework, then
sets remq's options on the backend's task (the same frozen dataclass the framework
makes), so one spelling works on every Django the package supports.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from . import compat
from .options import POLICY_KEYS

#: whether the framework's ``task()`` passes extra keywords to the task class
FRAMEWORK_TAKES_OPTIONS = any(p.kind is inspect.Parameter.VAR_KEYWORD
                              for p in inspect.signature(compat.task).parameters.values())


def task(function: Callable[..., Any] | None = None, *, priority: int = 0,
         queue_name: str = "default", backend: str = "default", takes_context: bool = False,
         **options: Any) -> Any:
    """``@task(...)`` with remq's ``attempts``, ``retry_delay_ms``, ``timeout_ms`` and
    ``debounce`` (see :mod:`django_remq.backends.options`), on Django 6.0 too."""
    framework = {"priority": priority, "queue_name": queue_name, "backend": backend,
                 "takes_context": takes_context}
    if FRAMEWORK_TAKES_OPTIONS or not options:
        return compat.task(function, **framework, **options)
    unknown = sorted(set(options) - set(POLICY_KEYS))
    if unknown:
        raise TypeError(f"task() got an unexpected keyword argument {unknown[0]!r} (remq's "
                        f"task options: {', '.join(POLICY_KEYS)})")

    def wrap(fn: Callable[..., Any]) -> Any:
        made = compat.task(fn, **framework)
        if not hasattr(made, POLICY_KEYS[0]):
            raise TypeError(f"task(): remq's options need a RemqBackend; backend {backend!r} "
                            f"is {type(made.get_backend()).__name__}")
        return dataclasses.replace(made, **options)

    return wrap if function is None else wrap(function)
