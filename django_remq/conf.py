"""Stand-in for the REMQ settings module (the Django-layer branch ships the full one,
with validation and system checks; it keeps this interface: ``get_settings()``
returning an object with ``redis_url``, ``prefix`` and ``processor``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class RemqSettings:
    redis_url: str = DEFAULT_REDIS_URL
    prefix: str = "remq"
    processor: Mapping[str, Any] = field(default_factory=dict)


def get_settings() -> RemqSettings:
    raw = getattr(settings, "REMQ", None) or {}
    return RemqSettings(redis_url=raw.get("REDIS_URL", DEFAULT_REDIS_URL),
                        prefix=raw.get("PREFIX", "remq"),
                        processor=dict(raw.get("PROCESSOR") or {}))
