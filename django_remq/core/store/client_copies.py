"""What the engine needs to copy the client it was given (:func:`.clients.copy_client`).

A user gives one thing: a URL, a sync or an asyncio client, a cluster client. The engine
needs a sync client, an asyncio client per event loop and, for blocking reads, clients
with a longer read timeout: each is made from the given one's settings, with a
connection class of the right kind (plain, TLS, Unix socket). Classes it cannot copy
(Sentinel, custom) are refused by name rather than replaced by plain ones.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from .redis_compat import cluster_connection_kwargs

ClusterClient = redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster

#: Seconds to wait for a reply / for a connection, for clients made from a URL.
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 5.0

SYNC_TO_ASYNC = {
    redis.Connection: redis.asyncio.Connection,
    redis.UnixDomainSocketConnection: redis.asyncio.UnixDomainSocketConnection,
    redis.SSLConnection: redis.asyncio.SSLConnection,
}
ASYNC_TO_SYNC = {v: k for k, v in SYNC_TO_ASYNC.items()}
PLAIN_POOLS = (redis.ConnectionPool, redis.BlockingConnectionPool)
PLAIN_CONNECTIONS = tuple(SYNC_TO_ASYNC)
PLAIN_ASYNC_POOLS = (redis.asyncio.ConnectionPool, redis.asyncio.BlockingConnectionPool)


def extend_read_timeout(kwargs: dict[str, Any], extra_s: float) -> None:
    """Lengthen a pool's read timeout (before it makes any connection); None stays None."""
    if extra_s and kwargs.get("socket_timeout") is not None:
        kwargs["socket_timeout"] = float(kwargs["socket_timeout"]) + extra_s


def longer_read(url: str, extra_s: float) -> str:
    """``url`` whose read timeout (its query's, else the default) is ``extra_s`` longer:
    a cluster client copies its settings into every node it discovers, so the timeout
    goes in before it is made."""
    if not extra_s:
        return url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    try:
        base = float(query.get("socket_timeout", DEFAULT_SOCKET_TIMEOUT))
    except ValueError:  # "None" and the like: no timeout stays no timeout
        return url
    query["socket_timeout"] = str(base + extra_s)
    return urlunsplit(parts._replace(query=urlencode(query)))


def cluster_url(client: ClusterClient) -> str:
    """A URL of the node a cluster client starts from, with its credentials."""
    node = client.get_default_node()
    if node is None:
        raise ValueError("this RedisCluster client knows no node yet; pass a URL instead")
    kw = cluster_connection_kwargs(client)
    auth = ""
    if kw.get("password"):
        auth = f"{quote(kw.get('username') or '')}:{quote(kw['password'])}@"
    return f"redis://{auth}{node.host}:{node.port}/0"


def counterpart_class(cls: type, twins: dict[type, type]) -> Any:
    """The connection class for the other kind of client (sync or asyncio): ``cls``'s
    twin, or ``cls`` itself when it is already of that kind (an asyncio client copied for
    another event loop)."""
    if cls in twins.values():
        return cls
    twin = twins.get(cls)
    if twin is None:
        raise TypeError(
            f"cannot copy a client whose connections are {cls.__module__}.{cls.__qualname__}: "
            "the engine needs a sync client and an asyncio client per event loop, made from "
            "the same settings, and knows how to do that for redis-py's plain, SSL and Unix "
            "socket connections only (Sentinel and custom connection classes are not "
            "supported). Pass a redis:// URL, or a client on a plain connection pool.")
    return twin


def pool_settings(client: redis.Redis | redis.asyncio.Redis) -> tuple[dict[str, Any], type]:
    pool = client.connection_pool
    return dict(pool.connection_kwargs), pool.connection_class


def fake_client(kwargs: dict[str, Any], *, asynchronous: bool) -> Any:
    """fakeredis clients sharing one in-process server (unit tests without a Redis)."""
    import fakeredis

    cls = fakeredis.FakeAsyncRedis if asynchronous else fakeredis.FakeRedis
    return cls(server=kwargs["server"], decode_responses=kwargs.get("decode_responses", False))
