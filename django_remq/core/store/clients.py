"""Every Redis client the package makes is made here.

From a URL (``make_client``): a plain or a cluster client (``cluster=True``: any node's
URL; redis-py learns the slot map), sync or asyncio, TLS by ``rediss://``, whose replies
are decoded or left as bytes. The socket timeouts go into the URL's query unless it sets
them itself (settings give defaults; a URL's own query is the more specific choice), so
one way of reading them serves every kind of client, a cluster's nodes included (a
cluster client copies its settings into every node it discovers). From a client given
(``copy_client``): the same settings on a connection class of the other kind (see
:mod:`.client_copies`). For a blocking read on a cluster: a one-connection client to one node
(``node_client``).

The engine's :class:`.connection.Connection`, the Django layer's settings
(``RemqSettings.connection``), the worker's start-up probe, the admin pages and the
WebSocket consumers all get their clients from these three functions; what they rely on in redis-py
beyond its public API is in :mod:`.redis_compat`.
"""

from __future__ import annotations

from typing import Any, Literal, cast, overload
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.cluster

from .client_copies import (
    ASYNC_TO_SYNC,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_SOCKET_TIMEOUT,
    SYNC_TO_ASYNC,
    counterpart_class,
    extend_read_timeout,
    fake_client,
    longer_read,
    pool_settings,
)
from .redis_compat import AsyncCluster


def with_timeouts(url: str, socket_timeout: float, socket_connect_timeout: float) -> str:
    """``url`` with these timeouts in its query, where the query does not set them already
    (settings give defaults; a URL's own query is the more specific choice)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = {k for k, _ in query}
    query += [(k, str(v)) for k, v in (("socket_timeout", socket_timeout),
                                         ("socket_connect_timeout", socket_connect_timeout))
              if k not in given]
    return urlunsplit(parts._replace(query=urlencode(query)))


@overload
def make_client(url: str, *, cluster: bool = ..., decode: bool = ...,
                asyncio: Literal[False] = ..., socket_timeout: float = ...,
                socket_connect_timeout: float = ..., extra_read_s: float = ...,
                max_connections: int | None = ...) -> redis.Redis: ...


@overload
def make_client(url: str, *, cluster: bool = ..., decode: bool = ...,
                asyncio: Literal[True], socket_timeout: float = ...,
                socket_connect_timeout: float = ..., extra_read_s: float = ...,
                max_connections: int | None = ...) -> redis.asyncio.Redis: ...


def make_client(url: str, *, cluster: bool = False, decode: bool = True, asyncio: bool = False,
                socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
                socket_connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                extra_read_s: float = 0.0, max_connections: int | None = None) -> Any:
    """A client for ``url``: plain or cluster (typed as ``Redis`` for the engine: they
    answer the same commands, keys of one slot each), sync or ``asyncio``.

    ``decode=False``: replies are bytes (for replies holding what anyone wrote).
    ``socket_timeout`` / ``socket_connect_timeout``: unless the URL's query sets them.
    ``extra_read_s``: a read timeout that much longer (a blocking read's block).
    ``max_connections``: the pool's cap (per node on a cluster)."""
    url = longer_read(with_timeouts(url, socket_timeout, socket_connect_timeout), extra_read_s)
    limit: dict[str, Any] = {"max_connections": max_connections} if max_connections else {}
    if cluster and asyncio:
        return cast(redis.asyncio.Redis, AsyncCluster.from_url(url, decode_responses=decode,
                                                               **limit))
    if cluster:
        return cast(redis.Redis, redis.cluster.RedisCluster.from_url(
            url, decode_responses=decode, **limit))
    if asyncio:
        return redis.asyncio.Redis.from_url(url, decode_responses=decode, **limit)
    return redis.Redis.from_url(url, decode_responses=decode, **limit)


def copy_client(client: redis.Redis | redis.asyncio.Redis, *, asyncio: bool, decode: bool = True,
                extra_read_s: float = 0.0, max_connections: int | None = None) -> Any:
    """A client of the kind asked for (sync or ``asyncio``) with ``client``'s settings:
    its address, credentials, TLS and timeouts, on the counterpart of its connection class
    (:func:`.client_copies.counterpart_class` refuses classes it cannot copy, by name).
    fakeredis clients share their in-process server."""
    kwargs, cls = pool_settings(client)
    if not decode:
        kwargs["decode_responses"] = False
    if "server" in kwargs:
        return fake_client(kwargs, asynchronous=asyncio)
    if not asyncio:
        sync_cls = counterpart_class(cls, ASYNC_TO_SYNC)
        pool = redis.ConnectionPool(connection_class=sync_cls, **kwargs)
        return redis.Redis.from_pool(pool)  # its close() closes the pool
    extend_read_timeout(kwargs, extra_read_s)
    limit: dict[str, Any] = {"max_connections": max_connections} if max_connections else {}
    async_cls = counterpart_class(cls, SYNC_TO_ASYNC)
    apool = redis.asyncio.ConnectionPool(connection_class=async_cls, **kwargs, **limit)
    return redis.asyncio.Redis.from_pool(apool)  # its aclose() closes the pool


def node_client(node: Any) -> redis.asyncio.Redis:
    """A one-connection asyncio client to one node of an asyncio cluster client (its
    address, credentials, TLS and timeouts as that client knows them): a blocking read
    there can be ended early by ``CLIENT UNBLOCK``, as a cluster client gives no say over
    which connection a command takes."""
    pool = redis.asyncio.BlockingConnectionPool(
        max_connections=1, connection_class=node.connection_class, **node.connection_kwargs)
    return redis.asyncio.Redis.from_pool(pool)  # its aclose() closes the pool
