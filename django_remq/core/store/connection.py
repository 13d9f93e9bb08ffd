"""Redis clients: one sync client per process, one asyncio client per event loop.

The user hands us one thing (a URL, a ``redis.Redis`` or a ``redis.asyncio.Redis``);
we need both kinds, because Django code emits synchronously while the worker runs
on asyncio. An asyncio client belongs to the loop that made it, so async clients
are made per loop (as channels_redis does) from the same connection settings, and
closed with that loop if not before (:meth:`Connection.close` closes them all).

Clients made from a URL time out: connecting after ``DEFAULT_CONNECT_TIMEOUT`` s and
waiting for a reply after ``DEFAULT_SOCKET_TIMEOUT`` s, unless the URL's query says
otherwise (``?socket_timeout=2&socket_connect_timeout=1``), so a frozen Redis makes
``emit`` raise instead of hanging a web request. A worker's blocking read waits
longer than that by design; it uses :meth:`Connection.blocking`, whose read timeout
is the socket timeout plus the block.

With ``cluster=True`` (``REMQ["CLUSTER"]``) a URL becomes redis-py's ``RedisCluster``
(sync) and ``redis.asyncio.RedisCluster`` (async), blocking client included: any
node's URL will do, the client learns the slot map and follows MOVED/ASK. A
``RedisCluster`` client given instead of a URL implies it; the other kind is made from
its node's address and credentials (give a ``rediss://`` URL for TLS). The clients are
typed as ``Redis`` for the engine; they answer the same commands (keys of one slot each).
Every client is made by :mod:`.clients`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from dataclasses import dataclass, field
from typing import cast

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.crc import key_slot

from .client_copies import (
    ASYNC_TO_SYNC,
    DEFAULT_SOCKET_TIMEOUT,
    PLAIN_ASYNC_POOLS,
    PLAIN_CONNECTIONS,
    PLAIN_POOLS,
    ClusterClient,
    cluster_url,
)
from .clients import copy_client, make_client, node_client, with_timeouts
from .line import AioLine, Line

log = logging.getLogger("django_remq.connection")

RedisLike = str | redis.Redis | redis.asyncio.Redis | ClusterClient
_CLUSTER_TYPES = (redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)

__all__ = ["Connection", "RedisLike", "describe", "with_timeouts"]


def describe(db: RedisLike) -> str:
    """Where a client points, for logs and errors; never shows a password."""
    if isinstance(db, str):
        url = db
        if "@" in url:
            scheme, rest = url.split("://", 1)
            url = f"{scheme}://***@{rest.split('@', 1)[1]}"
        return url
    if isinstance(db, _CLUSTER_TYPES):
        return f"{describe(cluster_url(db))} (cluster)"
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
        self.cluster = cluster or isinstance(db, _CLUSTER_TYPES)
        self._max_connections = max_connections
        self._sync: redis.Redis | None = db if isinstance(db, redis.Redis) else None
        if isinstance(db, redis.cluster.RedisCluster):
            self._sync = cast(redis.Redis, db)
        #: each event loop's clients (closed with the loop: see :func:`_closed_with`)
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = (
            weakref.WeakKeyDictionary())
        self._line: Line | None = None
        self._raw_sync: redis.Redis | None = None

    def __repr__(self) -> str:
        return f"Connection({describe(self.target)}{', cluster' if self.cluster else ''})"

    @property
    def sync(self) -> redis.Redis:
        if self._sync is None:
            self._sync = self._make_sync()
        return self._sync

    @property
    def raw_sync(self) -> redis.Redis:
        """A sync client whose replies are bytes (it does not decode, whatever the given
        client does): for replies holding what anyone wrote (job records, stream entries,
        dead letters). One byte that is not UTF-8 fails a decoding client's whole reply, a
        page of 50 jobs for one bad field; these replies are decoded field by field where
        they are read (:mod:`.records`)."""
        if self._raw_sync is None:
            try:
                self._raw_sync = self._make_sync(decode=False)
            except TypeError as exc:  # a client it cannot copy (Sentinel): use it as it is
                log.warning("%r: %s; reading with the client given, which decodes: a reply "
                            "holding bytes that are not UTF-8 fails whole", self, exc)
                self._raw_sync = self.sync
        return self._raw_sync

    @property
    def line(self) -> Line | None:
        """Connections of its own for lone script calls (:mod:`.line`), beside a plain
        pool of plain connections only: ``None`` on a cluster (its client routes each
        key), for Sentinel or other custom pools and connection classes (their pool
        knows how to connect), and on fakeredis."""
        if self._line is None and not self.cluster:
            pool = self.sync.connection_pool
            if type(pool) in PLAIN_POOLS and pool.connection_class in PLAIN_CONNECTIONS:
                self._line = Line(self.sync)
        return self._line

    @property
    def aline(self) -> AioLine | None:
        """The running loop's :class:`.AioLine` for script round trips, beside the loop's
        client when that is a plain pool of plain connections (``None`` as for
        :attr:`line`)."""
        return self._aline(0, decode=True)

    @property
    def raw_aio(self) -> redis.asyncio.Redis:
        """The running loop's asyncio client whose replies are bytes (see :attr:`raw_sync`):
        the worker's deliver calls, whose replies hold the records it runs."""
        return self.blocking(0)

    @property
    def raw_line(self) -> AioLine | None:
        """The :class:`.AioLine` beside :attr:`raw_aio`."""
        return self._aline(0, decode=False)

    def blocking_line(self, block_ms: int) -> AioLine | None:
        """An :class:`.AioLine` beside :meth:`blocking`'s client (its read timeout)."""
        return self._aline(block_ms, decode=False)

    def _aline(self, block_ms: int, *, decode: bool) -> AioLine | None:
        lines = self._clients().lines
        if (block_ms, decode) not in lines:
            client = self.aio if decode else self.blocking(block_ms)
            lines[block_ms, decode] = None if self.cluster else _aline_beside(client)
        return lines[block_ms, decode]

    @property
    def aio(self) -> redis.asyncio.Redis:
        """The asyncio client of the running loop (made on first use in that loop)."""
        made = self._clients()
        if made.aio is None:
            made.aio = self._make_async()
        return made.aio

    def blocking(self, block_ms: int) -> redis.asyncio.Redis:
        """An asyncio client for blocking reads (``XREADGROUP BLOCK``) of up to ``block_ms``
        (0: :attr:`raw_aio`): its read timeout is the usual one plus the block, so an idle
        worker is not cut off while a frozen Redis is still noticed. Its replies are bytes
        (see :attr:`raw_sync`): the read's reply holds the entries as anyone wrote them,
        and the deliver calls pipelined behind it the records."""
        made = self._clients().blocking
        client = made.get(block_ms)
        if client is None:
            client = made[block_ms] = self._make_async(extra_read_s=block_ms / 1000,
                                                       decode=False)
        return client

    async def pinned(self, key: str, block_ms: int) -> tuple[redis.asyncio.Redis, str]:
        """Cluster only: a one-connection client to the node serving ``key``'s slot, for a
        blocking read another task can end early by ``CLIENT UNBLOCK`` (a cluster client
        gives no say over which connection a command takes), and that node's name. When
        another node serves the slot now (a failover), the old node's client is closed."""
        cluster = cast(redis.asyncio.cluster.RedisCluster, self.blocking(block_ms))
        await cluster.initialize()
        node = cluster.get_node_from_key(key)
        if node is None:
            raise redis.exceptions.ConnectionError(f"no cluster node serves {key!r} yet")
        made = self._clients().pinned
        slot = key_slot(key.encode())
        name, client = made.get((slot, block_ms), (None, None))
        if client is None or name != node.name:
            if client is not None:
                await client.aclose()
            client = node_client(node)
            made[slot, block_ms] = (node.name, client)
        return client, node.name

    async def aclose(self) -> None:
        """Close the running loop's clients (made again if used again)."""
        await self._aclose_loop(asyncio.get_running_loop())

    def close(self) -> None:
        """Close every client this connection made: the sync one (and the Line's
        connections), and each event loop's asyncio ones (per-loop, blocking, per-slot),
        on that loop. Those of a loop running in this thread cannot be awaited here: they
        close with that loop (or ``await aclose()``); those of a loop already closed were
        closed with it."""
        if self._line is not None:
            self._line.close()
            self._line = None
        if self._raw_sync is not None:
            if self._raw_sync is not self.target and self._raw_sync is not self._sync:
                self._raw_sync.close()
            self._raw_sync = None
        if self._sync is not None and self._sync is not self.target:
            self._sync.close()
            self._sync = None
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop in list(self._loops):
            if loop is running or loop.is_closed():
                continue
            if loop.is_running():  # another thread's
                done = asyncio.run_coroutine_threadsafe(self._aclose_loop(loop), loop)
                try:
                    done.result(DEFAULT_SOCKET_TIMEOUT)
                except Exception:
                    log.warning("closing %r's clients on another thread's event loop failed",
                                self, exc_info=True)
            else:
                _close_on(loop, self)

    def _clients(self) -> _LoopClients:
        loop = asyncio.get_running_loop()
        made = self._loops.get(loop)
        if made is None:
            made = self._loops[loop] = _LoopClients()
            _closed_with(loop, self)
        return made

    async def _aclose_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        made = self._loops.pop(loop, None)
        if made is not None:
            for line in made.lines.values():
                if line is not None:
                    await line.aclose()
            for client in made.all():
                await client.aclose()

    def _make_sync(self, decode: bool = True) -> redis.Redis:
        """A sync client; ``decode=False``: one whose replies are bytes (:attr:`raw_sync`),
        made from the given client's settings when it is one."""
        db = self.target
        if self.cluster or isinstance(db, str):  # a URL's query wins over the defaults
            url = cluster_url(db) if isinstance(db, _CLUSTER_TYPES) else str(db)
            return make_client(url, cluster=self.cluster, decode=decode)
        assert isinstance(db, redis.asyncio.Redis | redis.Redis)
        client: redis.Redis = copy_client(db, asyncio=False, decode=decode)
        return client

    def _make_async(self, extra_read_s: float = 0.0, decode: bool = True) -> redis.asyncio.Redis:
        """An asyncio client; ``decode=False``: one whose replies are bytes, whatever the
        given client does (see :meth:`blocking`)."""
        db = self.target
        if self.cluster or isinstance(db, str):
            url = cluster_url(db) if isinstance(db, _CLUSTER_TYPES) else str(db)
            return make_client(url, cluster=self.cluster, decode=decode, asyncio=True,
                               extra_read_s=extra_read_s, max_connections=self._max_connections)
        assert isinstance(db, redis.asyncio.Redis | redis.Redis)
        client: redis.asyncio.Redis = copy_client(
            db, asyncio=True, decode=decode, extra_read_s=extra_read_s,
            max_connections=self._max_connections)
        return client


@dataclass
class _LoopClients:
    """One event loop's asyncio clients (an asyncio client belongs to its loop)."""

    aio: redis.asyncio.Redis | None = None
    #: per (block_ms, decode): the AioLine beside ``aio`` (0, True), beside the
    #: ``blocking`` client of block_ms (raw_aio: 0) (.., False), or None
    lines: dict[tuple[int, bool], AioLine | None] = field(default_factory=dict)
    blocking: dict[int, redis.asyncio.Redis] = field(default_factory=dict)
    #: per (slot, block_ms): the node it reads from, and the one-connection client
    pinned: dict[tuple[int, int], tuple[str, redis.asyncio.Redis]] = field(default_factory=dict)

    def all(self) -> list[redis.asyncio.Redis]:
        return [*([self.aio] if self.aio is not None else []), *self.blocking.values(),
                *(client for _, client in self.pinned.values())]


def _close_on(loop: asyncio.AbstractEventLoop, conn: Connection) -> None:
    """Close ``conn``'s clients of ``loop`` (not running) on that loop: from here, or, when
    this thread runs another loop (``run_until_complete`` refuses then, as under
    Playwright's sync API), from a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop.run_until_complete(conn._aclose_loop(loop))
        return
    helper = threading.Thread(target=lambda: loop.run_until_complete(conn._aclose_loop(loop)),
                              name="remq-close", daemon=True)
    helper.start()
    helper.join(DEFAULT_SOCKET_TIMEOUT)
    if helper.is_alive():
        log.warning("closing %r's clients took over %ss; left to finish", conn,
                    DEFAULT_SOCKET_TIMEOUT)


def _aline_beside(client: redis.asyncio.Redis) -> AioLine | None:
    """A line beside a plain pool of plain connections (not a cluster's: its client routes
    each key to its node)."""
    pool = client.connection_pool
    plain = type(pool) in PLAIN_ASYNC_POOLS and pool.connection_class in ASYNC_TO_SYNC
    return AioLine(client) if plain else None


def _closed_with(loop: asyncio.AbstractEventLoop, conn: Connection) -> None:
    """Close ``conn``'s clients of ``loop`` when the loop closes (``asyncio.run``'s end,
    a test's loop), as channels_redis does for its pools: a client left to the garbage
    collector after its loop is gone can no longer be closed, only warned about
    ("Unclosed RedisCluster client"). One hook per loop, over a weak set of the
    connections that used it: a long-lived loop meets a connection per ``Sdk(url)`` made
    in it, and a hook for each, nested, piled up for the loop's life and overflowed the
    stack at its close past about a thousand. Loops that take no attributes (uvloop) are left
    to ``await conn.aclose()``."""
    owners: weakref.WeakSet[Connection] | None = getattr(loop, _OWNERS, None)
    if owners is None:
        owners = weakref.WeakSet()
        original = loop.close

        def close() -> None:
            try:
                if not loop.is_closed() and not loop.is_running():
                    for owner in list(owners):
                        _close_quietly(loop, owner)
            finally:
                original()

        try:
            setattr(loop, _OWNERS, owners)
            loop.close = close  # type: ignore[method-assign]
        except (AttributeError, TypeError):
            return
    owners.add(conn)


#: the loop's attribute holding the connections its close closes
_OWNERS = "_remq_connections"


def _close_quietly(loop: asyncio.AbstractEventLoop, conn: Connection) -> None:
    try:
        _close_on(loop, conn)
    except Exception:
        log.warning("closing %r's clients as their event loop closes failed", conn,
                    exc_info=True)


