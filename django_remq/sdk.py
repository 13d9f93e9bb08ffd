"""The Sdk for Django code: ``Sdk()`` reads ``settings.REMQ``; ``Sdk(db)`` takes a Redis
client or URL, like the original remq's ``new Sdk(db)``. Everything else is the engine's
:class:`django_remq.core.sdk.Sdk`."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from .conf import RemqSettings, get_settings
from .core.sdk import Sdk as CoreSdk
from .core.store.calls import Retention
from .core.store.connection import Connection, RedisLike
from .redis_clients import remq_connection


class Sdk(CoreSdk):
    """Admin operations on the queues configured in ``REMQ`` (see the core ``Sdk``)."""

    def __init__(self, db: RedisLike | Connection | None = None, prefix: str | None = None, *,
                 dlq_key: str | None = None, retention: Retention | None = None,
                 cluster: bool | None = None) -> None:
        s = get_settings() if db is None or prefix is None else None
        processor: Mapping[str, Any] = getattr(s, "processor", None) or {}
        dlq = processor.get("dlq") or {}
        kept = processor.get("retention")
        super().__init__(db if db is not None else s.connection_url,  # type: ignore[union-attr]
                         prefix if prefix is not None else s.prefix,  # type: ignore[union-attr]
                         dlq_key=dlq_key or dlq.get("stream_key"),
                         retention=retention or (Retention(**kept) if kept else None),
                         cluster=cluster if cluster is not None  # else REMQ's, for its URL
                         else db is None and s.cluster)  # type: ignore[union-attr]


_lock = threading.Lock()
_shared: dict[tuple[float, float], tuple[RemqSettings, Sdk]] = {}


def shared_sdk(*, socket_timeout: float, socket_connect_timeout: float) -> Sdk:
    """One Sdk (one connection pool) per process, ``REMQ`` value and pair of timeouts,
    for views that read Redis on every request (the admin pages, the metrics scrape):
    it reaches Redis as every client of the project does (``CLUSTER`` included), with the
    caller's own timeouts, so a blackholed Redis is an error page in seconds."""
    conf = get_settings()
    key = (socket_timeout, socket_connect_timeout)
    with _lock:
        made = _shared.get(key)
        if made is None or made[0] is not conf:
            conn = remq_connection(conf, socket_timeout=socket_timeout,
                                   socket_connect_timeout=socket_connect_timeout)
            made = _shared[key] = (conf, Sdk(conn))
        return made[1]


__all__ = ["Sdk", "shared_sdk"]
