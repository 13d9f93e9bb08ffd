"""``settings.REMQ``: read lazily, validated, frozen.

Nothing is read at import. :func:`get_settings` validates the dict once and caches
a :class:`RemqSettings`; the cache is dropped on ``setting_changed`` so
``override_settings(REMQ=...)`` works in tests. The same validation feeds the
system checks (:mod:`django_remq.checks`), so ``manage.py check`` and a running
process never disagree about what is wrong: both call :func:`.conf_checks.problems`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .conf_checks import DEFAULT_CONCURRENCY, DEFAULT_REDIS_URL, SPEC, problems
from .core.options import MAX_PAYLOAD_BYTES
from .core.store.client_copies import DEFAULT_CONNECT_TIMEOUT, DEFAULT_SOCKET_TIMEOUT
from .core.store.connection import with_timeouts
from .core.store.replicas import DEFAULT_TIMEOUT_MS
from .core.worker import affinity
from .errors import ImproperlyConfiguredRemq

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_REDIS_URL", "ENV_REDIS_URL", "SPEC", "RemqSettings",
           "get_settings", "problems", "raw_settings", "reset"]

ENV_REDIS_URL = "REMQ_REDIS_URL"


@dataclass(frozen=True)
class RemqSettings:
    """The validated ``REMQ`` dict (attribute names are the keys in lower case)."""

    redis_url: str = DEFAULT_REDIS_URL
    stream_redis_url: str | None = None
    prefix: str = "remq"
    concurrency: int = DEFAULT_CONCURRENCY
    queues: tuple[str, ...] | None = None
    ctx: str | None = None
    processor: Mapping[str, Any] = field(default_factory=dict)
    gateway: Mapping[str, Any] = field(default_factory=dict)
    emit_on_commit: bool = False
    tasks_module: str | None = "tasks"
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
    socket_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    admin_permission: str | None = None
    cluster: bool = False
    wait_replicas: int = 0
    wait_timeout_ms: int = DEFAULT_TIMEOUT_MS
    cpu_affinity: affinity.Spec = affinity.THREADS
    max_payload_bytes: int | None = MAX_PAYLOAD_BYTES
    metrics_token: str | None = None

    @property
    def connection_url(self) -> str:
        """``redis_url`` with the socket timeouts in its query (unless it sets its own)."""
        return with_timeouts(self.redis_url, self.socket_timeout, self.socket_connect_timeout)

    def build_ctx(self) -> dict[str, Any]:
        """Call the ``CTX`` factory (the handlers' shared context), or return ``{}``."""
        if self.ctx is None:
            return {}
        factory: Callable[[], Mapping[str, Any]] = import_string(self.ctx)
        value = factory()
        if not isinstance(value, Mapping):
            raise ImproperlyConfiguredRemq(
                f"REMQ['CTX'] = {self.ctx!r} returned {type(value).__name__}; it must return a "
                "dict of what handlers find on ctx (e.g. {'http': requests.Session()}).")
        return dict(value)


def raw_settings() -> dict[str, Any]:
    """``settings.REMQ`` as written, with the ``REMQ_REDIS_URL`` environment override."""
    raw = getattr(settings, "REMQ", None)
    raw = dict(raw) if isinstance(raw, Mapping) else ({} if raw is None else raw)
    if isinstance(raw, dict) and os.environ.get(ENV_REDIS_URL):
        raw["REDIS_URL"] = os.environ[ENV_REDIS_URL]
    return raw


@cache
def get_settings() -> RemqSettings:
    """The process's REMQ configuration; raises :class:`ImproperlyConfiguredRemq`."""
    raw = raw_settings()
    found = problems(raw, import_paths=False)
    if found:
        first = found[0]
        raise ImproperlyConfiguredRemq(f"{first.msg}" + (f" {first.hint}" if first.hint else "")
                                       + f" [{first.id}]")
    values = {k: raw.get(k, default) for k, (_, default) in SPEC.items()}
    return RemqSettings(
        redis_url=values["REDIS_URL"], stream_redis_url=values["STREAM_REDIS_URL"],
        prefix=values["PREFIX"], concurrency=values["CONCURRENCY"],
        queues=tuple(values["QUEUES"]) if values["QUEUES"] else None, ctx=values["CTX"],
        processor=dict(values["PROCESSOR"] or {}), gateway=dict(values["GATEWAY"] or {}),
        emit_on_commit=values["EMIT_ON_COMMIT"], tasks_module=values["TASKS_MODULE"],
        socket_timeout=float(values["SOCKET_TIMEOUT"]),
        socket_connect_timeout=float(values["SOCKET_CONNECT_TIMEOUT"]),
        admin_permission=values["ADMIN_PERMISSION"], cluster=values["CLUSTER"],
        wait_replicas=values["WAIT_REPLICAS"], wait_timeout_ms=values["WAIT_TIMEOUT_MS"],
        cpu_affinity=affinity.check(values["CPU_AFFINITY"]),
        max_payload_bytes=values["MAX_PAYLOAD_BYTES"],
        metrics_token=(values["METRICS"] or {}).get("TOKEN"))


def reset() -> None:
    """Forget the cached settings (done on ``setting_changed``; call it after changing
    the ``REMQ_REDIS_URL`` environment variable in a running process)."""
    get_settings.cache_clear()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "REMQ":
        reset()
