"""Which argument of a task call cannot be stored, and why.

The framework normalises a call's arguments to JSON and fails with a bare ``TypeError:
Unsupported type: <class 'datetime.datetime'>``; ``emit()`` names the offending value,
so an ``enqueue()`` does too: its position or keyword, and where inside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

LEAVES = (str, int, float, bool, type(None))
HINT = ("Convert it before enqueueing, e.g. a datetime with .isoformat(), a Decimal with "
        "str(), a model instance with its pk.")


def unsupported_argument(task: Any, args: Sequence[Any], kwargs: Mapping[str, Any],
                         exc: Exception) -> str:
    """The message for ``exc``, raised by the framework on the call ``args, kwargs``."""
    where = f"{task.module_path}.enqueue()"
    named = [(f"positional argument {i}", f"args[{i}]", v) for i, v in enumerate(args)]
    named += [(f"keyword argument {k!r}", f"kwargs[{k!r}]", v) for k, v in kwargs.items()]
    for label, path, value in named:
        found = first_unsupported(value, path)
        if found is not None:
            at, bad = found
            spot = label if at == path else f"{label} (at {at})"
            text = repr(bad) if len(repr(bad)) <= 80 else repr(bad)[:77] + "..."
            return (f"{where}: {spot} = {text} ({type(bad).__name__}) cannot be stored: a "
                    f"task's arguments are saved as JSON ({exc}). {HINT}")
    return f"{where}: the arguments cannot be stored as JSON ({exc})."


def first_unsupported(value: Any, path: str) -> tuple[str, Any] | None:
    """The first value ``normalize_json`` refuses, with its path. Its rules: any Mapping
    (with keys that stay hashable) or Sequence, and bytes that are UTF-8."""
    if isinstance(value, LEAVES):
        return None
    if isinstance(value, bytes):
        return None if _is_utf8(value) else (path, value)
    if isinstance(value, Mapping):
        return _first_in_mapping(value, path)
    if isinstance(value, Sequence):
        for i, item in enumerate(value):
            found = first_unsupported(item, f"{path}[{i}]")
            if found:
                return found
        return None
    return path, value


def _first_in_mapping(value: Mapping[Any, Any], path: str) -> tuple[str, Any] | None:
    for key, item in value.items():
        if not (isinstance(key, LEAVES) or (isinstance(key, bytes) and _is_utf8(key))):
            return f"{path} key {key!r}", key
        found = first_unsupported(item, f"{path}[{key!r}]")
        if found:
            return found
    return None


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
