"""django_remq: a Redis Streams task queue for Django.

Importing this package does nothing by itself (no settings read, no Redis
touched); names are loaded on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import TaskManager
    from .sdk import Sdk

__version__ = "0.1.0"

_LAZY = {
    "TaskManager": "django_remq.core",
    "Sdk": "django_remq.sdk",
}

__all__ = ["Sdk", "TaskManager", "__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'django_remq' has no attribute {name!r}")
    return getattr(import_module(module), name)
