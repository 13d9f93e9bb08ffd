"""JSON in one place: compact output, and an error that names what cannot be encoded."""

from __future__ import annotations

import json
from typing import Any

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
loads = json.loads


def dumps(value: Any) -> str:
    return _encoder.encode(value)


def dumps_data(value: Any, where: str) -> str:
    """Encode a task's payload, or raise ``TypeError`` naming the offending value."""
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{where}: data must be JSON-serialisable ({exc}). Convert the value first, e.g. "
            "a datetime with .isoformat(), a Decimal with str(), a model instance with its pk."
        ) from None
