"""JSON in one place: compact output, and an error that names what cannot be encoded."""

from __future__ import annotations

import json
import math
from typing import Any

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
#: A task's payload: no NaN/Infinity (not JSON: other readers of the record would fail).
_strict = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
loads = json.loads
LEAVES = (str, int, float, bool, type(None))
HINT = ("Convert it before emitting, e.g. a datetime with .isoformat(), a Decimal with str(), "
        "a model instance with its pk.")


def dumps(value: Any) -> str:
    return _encoder.encode(value)


def dumps_data(value: Any, where: str) -> str:
    """Encode a task's payload, or raise ``TypeError`` naming the offending value's path
    (``data['items'][1]``): a non-JSON type, NaN/Infinity, or text that is not valid
    Unicode (a lone surrogate cannot be stored)."""
    try:
        text = _strict.encode(value)
        text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        found = first_bad(value, "data", set())
        if found is None:  # e.g. a circular reference
            raise TypeError(f"{where}: data is not JSON-serialisable ({exc}).") from None
        path, bad, why = found
        raise TypeError(f"{where}: {path} = {_short(bad)} ({type(bad).__name__}) {why}. "
                        f"{HINT}") from None
    return text


def _leaf_problem(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "is not a JSON number (NaN and Infinity are not JSON)"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode text (a lone surrogate cannot be stored)"
    return None


def first_bad(value: Any, path: str, seen: set[int]) -> tuple[str, Any, str] | None:
    """The path, value and problem of the first thing in ``value`` JSON cannot hold."""
    if isinstance(value, LEAVES):
        why = _leaf_problem(value)
        return None if why is None else (path, value, why)
    if id(value) in seen:
        return None
    seen.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            why = "is not a valid JSON key" if not isinstance(key, LEAVES) else _leaf_problem(key)
            if why is not None:
                return f"{path} key", key, why
            found = first_bad(item, f"{path}[{key!r}]", seen)
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = first_bad(item, f"{path}[{i}]", seen)
            if found:
                return found
        return None
    return path, value, "is not JSON-serialisable"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
