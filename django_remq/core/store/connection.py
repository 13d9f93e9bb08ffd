"""Redis clients: one sync client per process, one asyncio client per event loop.

The user hands us one thing (a URL, a ``redis.Redis`` or a ``redis.asyncio.Redis``);
we need both kinds, because Django code emits synchronously while the worker runs
on asyncio. An asyncio client belongs to the loop that made it, so async clients
are made per loop (as channels_redis does) from the same connection settings.

With ``cluster=True`` (``REMQ["CLUSTER"]``) a URL becomes redis-py's ``RedisCluster``
(sync) and ``redis.asyncio.RedisCluster`` (async): any node's URL will do, the
client learns the slot map and follows MOVED/ASK. A ``RedisCluster`` client given
instead of a URL implies it; the other kind is made from its node's address and
credentials (give a ``rediss://`` URL for TLS). The clients are typed as ``Redis``
for the engine; they answer the same commands (keys of one slot each).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any, cast
from urllib.parse import quote

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

ClusterClient = redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster
RedisLike = str | redis.Redis | redis.asyncio.Redis | ClusterClient
_CLUSTER_TYPES = (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)

log = logging.getLogger("django_remq.connection")


def cluster_client_problem(version: str = redis.__version__) -> str | None:
    """Why this redis-py must not drive a cluster, or ``None``. Measured here: from 7.1
    (tested 7.1.1 to 7.4.1) ``redis.asyncio.RedisCluster`` shared by many concurrent
    commands corrupts its connections, and its retry then applies a command twice
    (a HINCRBY counted twice); 6.4.0 and 7.0.1 do not."""
    try:
        major, minor = (int(x) for x in version.split(".")[:2])
    except ValueError:
        return None
    if major == 7 and minor >= 1:
        return (f"redis-py {version}'s asyncio RedisCluster corrupts connections under "
                "concurrent commands and its retries apply some commands twice; install "
                "redis>=6.4,<7.1 for a cluster (pip install 'redis[hiredis]>=6.4,<7.1')")
    return None

_SYNC_TO_ASYNC = {
    redis.Connection: redis.asyncio.Connection,
    redis.UnixDomainSocketConnection: redis.asyncio.UnixDomainSocketConnection,
    redis.SSLConnection: redis.asyncio.SSLConnection,
}
_ASYNC_TO_SYNC = {v: k for k, v in _SYNC_TO_ASYNC.items()}


def describe(db: RedisLike) -> str:
    """Where a client points, for logs and errors; never shows a password."""
    if isinstance(db, str):
        url = db
        if "@" in url:
            scheme, rest = url.split("://", 1)
            url = f"{scheme}://***@{rest.split('@', 1)[1]}"
        return url
    if isinstance(db, ClusterClient):
        return f"{describe(_cluster_url(db))} (cluster)"
    kw = db.connection_pool.connection_kwargs
    if "path" in kw:
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    if "server" in kw:
        return "fakeredis (in-process)"
    return f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


class Connection:
    """Hands out the right client for the calling context."""

    def __init__(self, db: RedisLike, *, max_connections: int | None = None,
                 cluster: bool = False) -> None:
        if cluster and not isinstance(db, (str, *_CLUSTER_TYPES)):
            raise TypeError("cluster=True takes a URL (any node's) or a RedisCluster client, "
                            f"not {type(db).__name__}")
        self.target = db
        self.cluster = cluster or isinstance(db, ClusterClient)
        self._max_connections = max_connections
        self._sync: redis.Redis | None = db if isinstance(db, redis.Redis) else None
        if isinstance(db, redis.cluster.RedisCluster):
            self._sync = cast(redis.Redis, db)
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"Connection({describe(self.target)}{', cluster' if self.cluster else ''})"

    @property
    def sync(self) -> redis.Redis:
        if self._sync is None:
            self._sync = self._make_sync()
        return self._sync

    @property
    def aio(self) -> redis.asyncio.Redis:
        """The asyncio client of the running loop (made on first use in that loop)."""
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._async[loop] = self._make_async()
        return client

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._async.pop(loop, None)
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        if self._sync is not None and self._sync is not self.target:
            self._sync.close()
            self._sync = None

    def _make_sync(self) -> redis.Redis:
        db = self.target
        if self.cluster:
            url = _cluster_url(db) if isinstance(db, _CLUSTER_TYPES) else str(db)
            return cast(redis.Redis, redis.cluster.RedisCluster.from_url(
                url, decode_responses=True))
        if isinstance(db, str):
            client: redis.Redis = redis.Redis.from_url(db, decode_responses=True)
            return client
        assert isinstance(db, redis.asyncio.Redis)
        kwargs, cls = _pool_settings(db)
        if "server" in kwargs:
            fake: redis.Redis = _fake_client(kwargs, asynchronous=False)
            return fake
        pool = redis.ConnectionPool(connection_class=_ASYNC_TO_SYNC.get(cls, redis.Connection),
                                    **kwargs)
        return redis.Redis(connection_pool=pool)

    def _make_async(self) -> redis.asyncio.Redis:
        db = self.target
        limit: dict[str, Any] = (
            {"max_connections": self._max_connections} if self._max_connections else {})
        if self.cluster:
            url = _cluster_url(db) if isinstance(db, _CLUSTER_TYPES) else str(db)
            problem = cluster_client_problem()
            if problem:
                log.warning("Redis Cluster: %s", problem)
            return cast(redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster.from_url(
                url, decode_responses=True, **limit))
        if isinstance(db, str):
            aclient: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
                db, decode_responses=True, **limit)
            return aclient
        assert not isinstance(db, _CLUSTER_TYPES)
        kwargs, cls = _pool_settings(db)
        if "server" in kwargs:
            fake: redis.asyncio.Redis = _fake_client(kwargs, asynchronous=True)
            return fake
        pool = redis.asyncio.ConnectionPool(
            connection_class=_SYNC_TO_ASYNC.get(cls, redis.asyncio.Connection), **kwargs, **limit
        )
        return redis.asyncio.Redis(connection_pool=pool)


def _cluster_url(client: ClusterClient) -> str:
    """A URL of the node a cluster client starts from, with its credentials."""
    node = client.get_default_node()
    if node is None:
        raise ValueError("this RedisCluster client knows no node yet; pass a URL instead")
    kw: dict[str, Any] = (client.nodes_manager.connection_kwargs
                          if isinstance(client, redis.cluster.RedisCluster)
                          else client.connection_kwargs)
    auth = ""
    if kw.get("password"):
        auth = f"{quote(kw.get('username') or '')}:{quote(kw['password'])}@"
    return f"redis://{auth}{node.host}:{node.port}/0"


def _pool_settings(client: redis.Redis | redis.asyncio.Redis) -> tuple[dict[str, Any], type]:
    pool = client.connection_pool
    return dict(pool.connection_kwargs), pool.connection_class


def _fake_client(kwargs: dict[str, Any], *, asynchronous: bool) -> Any:
    """fakeredis clients sharing one in-process server (unit tests without a Redis)."""
    import fakeredis

    cls = fakeredis.FakeAsyncRedis if asynchronous else fakeredis.FakeRedis
    return cls(server=kwargs["server"], decode_responses=kwargs.get("decode_responses", False))
