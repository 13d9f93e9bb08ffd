"""Redis clients: one sync client per process, one asyncio client per event loop.

The user hands us one thing (a URL, a ``redis.Redis`` or a ``redis.asyncio.Redis``);
we need both kinds, because Django code emits synchronously while the worker runs
on asyncio. An asyncio client belongs to the loop that made it, so async clients
are made per loop (as channels_redis does) from the same connection settings.

Clients made from a URL time out: connecting after ``DEFAULT_CONNECT_TIMEOUT`` s and
waiting for a reply after ``DEFAULT_SOCKET_TIMEOUT`` s, unless the URL's query says
otherwise (``?socket_timeout=2&socket_connect_timeout=1``), so a frozen Redis makes
``emit`` raise instead of hanging a web request. A worker's blocking read waits
longer than that by design; it uses :meth:`Connection.blocking`, whose read timeout
is the socket timeout plus the block.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio

RedisLike = str | redis.Redis | redis.asyncio.Redis
#: Seconds to wait for a reply / for a connection, for clients made from a URL.
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 5.0
_TIMEOUTS: dict[str, Any] = {"socket_timeout": DEFAULT_SOCKET_TIMEOUT,
             "socket_connect_timeout": DEFAULT_CONNECT_TIMEOUT}

_SYNC_TO_ASYNC = {
    redis.Connection: redis.asyncio.Connection,
    redis.UnixDomainSocketConnection: redis.asyncio.UnixDomainSocketConnection,
    redis.SSLConnection: redis.asyncio.SSLConnection,
}
_ASYNC_TO_SYNC = {v: k for k, v in _SYNC_TO_ASYNC.items()}


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


def describe(db: RedisLike) -> str:
    """Where a client points, for logs and errors; never shows a password."""
    if isinstance(db, str):
        url = db
        if "@" in url:
            scheme, rest = url.split("://", 1)
            url = f"{scheme}://***@{rest.split('@', 1)[1]}"
        return url
    kw = db.connection_pool.connection_kwargs
    if "path" in kw:
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    if "server" in kw:
        return "fakeredis (in-process)"
    return f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


class Connection:
    """Hands out the right client for the calling context."""

    def __init__(self, db: RedisLike, *, max_connections: int | None = None) -> None:
        self.target = db
        self._max_connections = max_connections
        self._sync: redis.Redis | None = db if isinstance(db, redis.Redis) else None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._blocking: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[int, redis.asyncio.Redis]] = (
            weakref.WeakKeyDictionary())

    def __repr__(self) -> str:
        return f"Connection({describe(self.target)})"

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

    def blocking(self, block_ms: int) -> redis.asyncio.Redis:
        """An asyncio client for blocking reads (``XREADGROUP BLOCK``) of up to ``block_ms``:
        its read timeout is the usual one plus the block, so an idle worker is not cut
        off while a frozen Redis is still noticed."""
        made = self._blocking.setdefault(asyncio.get_running_loop(), {})
        client = made.get(block_ms)
        if client is None:
            client = made[block_ms] = self._make_async(extra_read_s=block_ms / 1000)
        return client

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._async.pop(loop, None)
        if client is not None:
            await client.aclose()
        for blocking in self._blocking.pop(loop, {}).values():
            await blocking.aclose()

    def close(self) -> None:
        if self._sync is not None and self._sync is not self.target:
            self._sync.close()
            self._sync = None

    def _make_sync(self) -> redis.Redis:
        db = self.target
        if isinstance(db, str):  # the URL's query wins over these defaults
            client: redis.Redis = redis.Redis.from_url(db, decode_responses=True, **_TIMEOUTS)
            return client
        assert isinstance(db, redis.asyncio.Redis)
        kwargs, cls = _pool_settings(db)
        if "server" in kwargs:
            fake: redis.Redis = _fake_client(kwargs, asynchronous=False)
            return fake
        pool = redis.ConnectionPool(connection_class=_ASYNC_TO_SYNC.get(cls, redis.Connection),
                                    **kwargs)
        return redis.Redis(connection_pool=pool)

    def _make_async(self, extra_read_s: float = 0.0) -> redis.asyncio.Redis:
        db = self.target
        limit: dict[str, Any] = (
            {"max_connections": self._max_connections} if self._max_connections else {})
        if isinstance(db, str):
            aclient: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
                db, decode_responses=True, **limit, **_TIMEOUTS)
            _extend_read_timeout(aclient.connection_pool.connection_kwargs, extra_read_s)
            return aclient
        kwargs, cls = _pool_settings(db)
        if "server" in kwargs:
            fake: redis.asyncio.Redis = _fake_client(kwargs, asynchronous=True)
            return fake
        _extend_read_timeout(kwargs, extra_read_s)
        pool = redis.asyncio.ConnectionPool(
            connection_class=_SYNC_TO_ASYNC.get(cls, redis.asyncio.Connection), **kwargs, **limit
        )
        return redis.asyncio.Redis(connection_pool=pool)


def _extend_read_timeout(kwargs: dict[str, Any], extra_s: float) -> None:
    """Lengthen a pool's read timeout (before it makes any connection); None stays None."""
    if extra_s and kwargs.get("socket_timeout") is not None:
        kwargs["socket_timeout"] = float(kwargs["socket_timeout"]) + extra_s


def _pool_settings(client: redis.Redis | redis.asyncio.Redis) -> tuple[dict[str, Any], type]:
    pool = client.connection_pool
    return dict(pool.connection_kwargs), pool.connection_class


def _fake_client(kwargs: dict[str, Any], *, asynchronous: bool) -> Any:
    """fakeredis clients sharing one in-process server (unit tests without a Redis)."""
    import fakeredis

    cls = fakeredis.FakeAsyncRedis if asynchronous else fakeredis.FakeRedis
    return cls(server=kwargs["server"], decode_responses=kwargs.get("decode_responses", False))
