"""django_remq: a Redis Streams task queue for Django.

Importing this package does nothing by itself (no settings read, no Redis
touched); names are loaded on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import get_task_manager
    from .core import HandlerContext, Task, TaskManager
    from .decorators import handler
    from .emitting import aemit, aemit_many, emit, emit_many
    from .sdk import Sdk

__version__ = "0.1.0"  # the one place: pyproject.toml reads it for the package version

_LAZY = {
    "TaskManager": "django_remq.core",
    "Task": "django_remq.core",
    "HandlerContext": "django_remq.core",
    "handler": "django_remq.decorators",
    "emit": "django_remq.emitting",
    "aemit": "django_remq.emitting",
    "emit_many": "django_remq.emitting",
    "aemit_many": "django_remq.emitting",
    "get_task_manager": "django_remq.api",
    "Sdk": "django_remq.sdk",
}

__all__ = ["HandlerContext", "Sdk", "Task", "TaskManager", "__version__", "aemit", "aemit_many",
           "emit", "emit_many", "get_task_manager", "handler"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'django_remq' has no attribute {name!r}")
    return getattr(import_module(module), name)
