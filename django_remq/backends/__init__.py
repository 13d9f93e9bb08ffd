"""Django's Tasks framework on remq: ``TASKS = {"default": {"BACKEND":
"django_remq.backends.RemqBackend"}}``.

``RemqBackend`` is imported on first use, so the rest of django_remq (and
:mod:`.wiring`, which ``AppConfig.ready`` hooks into every TaskManager built) works on a
Django without the framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import RemqBackend
    from .decorator import task
    from .options import RemqTask


def __getattr__(name: str) -> Any:
    if name == "RemqBackend":
        from .backend import RemqBackend

        return RemqBackend
    if name == "RemqTask":
        from .options import RemqTask

        return RemqTask
    if name == "task":  # @task with remq's options on every Django (6.0's takes none)
        from .decorator import task

        return task
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RemqBackend", "RemqTask", "task"]
