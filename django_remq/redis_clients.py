"""How the Django layer reaches Redis: ``REMQ`` fed to the engine's one client factory.

``REMQ["REDIS_URL"]`` (TLS by ``rediss://``, any redis-py option in its query),
``REMQ["CLUSTER"]`` and the socket timeouts (``SOCKET_TIMEOUT``,
``SOCKET_CONNECT_TIMEOUT``; a URL's own query wins) make every client: the worker's
and the gateway's (through the task manager), the ``Sdk()``'s and the admin pages'
(:func:`shared_connection`, one per process), and the worker's start-up probe
(``worker.probe_redis``, given the URL and ``CLUSTER``), all by
:mod:`django_remq.core.store.clients`.
"""

from __future__ import annotations

import threading

import redis.exceptions

from .conf import RemqSettings, get_settings
from .core.store.clients import with_timeouts
from .core.store.connection import Connection


def remq_connection(conf: RemqSettings | None = None, *, socket_timeout: float | None = None,
                    socket_connect_timeout: float | None = None) -> Connection:
    """A :class:`Connection` to ``REMQ``'s Redis (a cluster's with ``CLUSTER``); the
    timeouts given replace ``REMQ``'s, unless the URL's query sets its own."""
    conf = conf or get_settings()
    url = with_timeouts(conf.redis_url,
                        conf.socket_timeout if socket_timeout is None else socket_timeout,
                        conf.socket_connect_timeout if socket_connect_timeout is None
                        else socket_connect_timeout)
    return Connection(url, cluster=conf.cluster)


_lock = threading.Lock()
_shared: dict[tuple[float | None, float | None], tuple[RemqSettings, Connection]] = {}


def shared_connection(*, socket_timeout: float | None = None,
                      socket_connect_timeout: float | None = None) -> Connection:
    """One :func:`remq_connection` per process, ``REMQ`` value and pair of timeouts, for
    code that reaches Redis on every request (``Sdk()`` in a view, the admin pages, the
    metrics scrape): a connection made per call cost a TCP connect and its handshake
    each time, some five times the call itself."""
    conf = get_settings()
    key = (socket_timeout, socket_connect_timeout)
    with _lock:
        made = _shared.get(key)
        if made is None or made[0] is not conf:
            made = _shared[key] = (conf, remq_connection(
                conf, socket_timeout=socket_timeout,
                socket_connect_timeout=socket_connect_timeout))
        return made[1]


#: Errors that mean "Redis is not reachable right now" rather than a bug: what the admin
#: pages and the metrics view answer with their Redis-down page or a 503 (the last two: a
#: Redis Cluster with no node answering, or electing a new master).
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
               redis.exceptions.BusyLoadingError, redis.exceptions.RedisClusterException,
               redis.exceptions.ClusterDownError)
