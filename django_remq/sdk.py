"""The Sdk for Django code: ``Sdk()`` reads ``settings.REMQ``; ``Sdk(db)`` takes a Redis
client or URL, like the original remq's ``new Sdk(db)``. Everything else is the engine's
:class:`django_remq.core.sdk.Sdk`."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from .conf import get_settings
from .core.sdk import Sdk as CoreSdk
from .core.store.calls import Retention
from .core.store.connection import Connection, RedisLike
from .redis_clients import shared_connection


class Sdk(CoreSdk):
    """Admin operations on the queues configured in ``REMQ`` (see the core ``Sdk``).

    ``Sdk()`` takes the process's connection to ``REMQ``'s Redis (one pool, shared by every
    ``Sdk()``: one is cheap to make per request, and ``close()`` leaves it open);
    ``Sdk(url)`` makes its own, closed by ``close()`` or ``with Sdk(url) as sdk:``."""

    def __init__(self, db: RedisLike | Connection | None = None, prefix: str | None = None, *,
                 dlq_key: str | None = None, retention: Retention | None = None,
                 cluster: bool | None = None) -> None:
        s = get_settings() if db is None or prefix is None else None
        processor: Mapping[str, Any] = getattr(s, "processor", None) or {}
        dlq = processor.get("dlq") or {}
        kept = processor.get("retention")
        if db is None and cluster is not None and cluster != s.cluster:  # type: ignore[union-attr]
            db = s.connection_url  # type: ignore[union-attr]  # REMQ's URL, another mode
        super().__init__(db if db is not None else shared_connection(),
                         prefix if prefix is not None else s.prefix,  # type: ignore[union-attr]
                         dlq_key=dlq_key or dlq.get("stream_key"),
                         retention=retention or (Retention(**kept) if kept else None),
                         cluster=bool(cluster))


_lock = threading.Lock()
_shared: dict[tuple[float, float], Sdk] = {}


def shared_sdk(*, socket_timeout: float, socket_connect_timeout: float) -> Sdk:
    """One Sdk per process connection (:func:`shared_connection`: per ``REMQ`` value and
    pair of timeouts), for views that read Redis on every request (the admin pages, the
    metrics scrape): it reaches Redis as every client of the project does (``CLUSTER``
    included), with the caller's own timeouts, so a blackholed Redis is an error page in
    seconds; and it keeps what it learnt of each queue's lanes from one request to the
    next."""
    conn = shared_connection(socket_timeout=socket_timeout,
                             socket_connect_timeout=socket_connect_timeout)
    key = (socket_timeout, socket_connect_timeout)
    with _lock:
        sdk = _shared.get(key)
        if sdk is None or sdk.conn is not conn:  # REMQ changed: so did the connection
            sdk = _shared[key] = Sdk(conn)
        return sdk


__all__ = ["Sdk", "shared_sdk"]
