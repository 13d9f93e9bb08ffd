"""Lines: bare stacks of connections for script calls (``emit``; the worker's round trips).

redis-py's client takes a connection from its pool for every command and hands it back
after: it probes the socket for stale data (a non-blocking read and two ``settimeout``
calls) and takes the pool's lock twice. On a Redis on the same host that costs as much
as the round trip itself (``bench/throughput.py`` prints both: an LPUSH through the pool
against the same on a connection of its own). A Line keeps its own idle connections,
made from the client's pool settings, on a list: a call pops one (or makes one), sends,
reads and pushes it back, so threads never share a connection and short-lived threads
(a request each) reuse them. ``list.pop``/``append`` are atomic: no lock on the way.

A connection goes back on the list only after a whole reply was read (an error closes
it), so the pool's probe for an unread reply has nothing to find here. What else the
probe catches, an idle connection the server closed (its timeout, a restart, a
failover), depends on the call. A call that is safe to repeat (``idempotent=True``: see
:class:`.scripts.Script`; ``emit`` is, by job id) is sent once more on a new connection
when its idle one fails, and retried under the connection's own ``Retry`` policy, as
on the client. A call that is not (``update.lua``'s log lines would be written twice)
is never sent twice: an idle connection the server closed is replaced before the call
(a look at what the event loop or the socket already knows, no round trip), and a
connection lost once the call went out raises, for the caller's own logic to handle,
the call having run or not. Only scripts go through a Line: they have no reply
callbacks, so the reply is the client's. A forked child never uses its parent's
connections.

:class:`AioLine` is the asyncio twin, for the worker's round trips of scripts (deliver,
finish): one per event loop, a round trip of one or many script calls on an idle
connection of its own, packed by hiredis. redis-py's asyncio client packs in pure Python
(several times slower than hiredis) and adds a pool probe, a retry
wrapper and a timeout per command: about twice the CPU per script call, one at a time,
of a connection of its own (docs/benchmarks.md). That is what a worker pays per task at
concurrency 1, and per batch above it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import ConnectionError, DataError, ResponseError

from .redis_compat import closed_by_server

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis comes with redis[hiredis], a dependency
    _hiredis_pack = None  # type: ignore[assignment]


class Line:
    """``execute_command`` on an idle connection of its own to ``client``'s Redis."""

    def __init__(self, client: redis.Redis) -> None:
        pool = client.connection_pool
        self._make: Any = lambda: pool.connection_class(**pool.connection_kwargs)
        self._idle: list[Any] = []  # redis.connection.AbstractConnection (untyped)
        self._pid = os.getpid()

    def execute_command(self, *args: Any, idempotent: bool = False) -> Any:
        """The reply to one command; ``idempotent``: safe to send again after a lost
        connection (see the module's docstring)."""
        if self._pid != os.getpid():  # a forked child: the parent's sockets are not ours
            self._idle, self._pid = [], os.getpid()
        try:
            conn, idle = self._idle.pop(), True
        except IndexError:
            conn, idle = self._make(), False
        if idle and not idempotent and _closed(conn):
            conn.disconnect()  # the call connects again, on a fresh socket
        try:
            reply = _call(conn, args, idempotent)
        except ConnectionError:
            conn.disconnect()
            if not (idle and idempotent):
                raise
            # an idle connection the server closed meanwhile: once more on a new one, as
            # the pool's probe would have done
            reply = _call(conn, args, idempotent)
        self._idle.append(conn)
        return reply

    def close(self) -> None:
        """Close the idle connections (a call made later opens a new one)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.disconnect()


def _closed(conn: Any) -> bool:
    """Whether an idle connection was closed by the server (or holds bytes nobody asked
    for): a non-blocking read, as redis-py's pool does before handing one out."""
    try:
        return bool(conn.can_read(timeout=0))
    except ConnectionError:
        return True


def _call(conn: Any, args: tuple[Any, ...], idempotent: bool) -> Any:
    def send() -> Any:
        conn.send_command(*args)
        return conn.read_response()

    if not idempotent:  # connecting is retried (nothing is sent then), the call is not
        conn.connect()
        return send()
    return conn.retry.call_with_retry(send, lambda _error: conn.disconnect())


class AioLine:
    """Round trips of script calls on idle connections of its own (one event loop's)."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        pool = client.connection_pool
        self._make: Any = lambda: pool.connection_class(**pool.connection_kwargs)
        self._idle: list[Any] = []  # redis.asyncio.connection.AbstractConnection
        kw = pool.connection_kwargs  # hiredis packs str as strict UTF-8, redis-py's default
        self._hiredis = (_hiredis_pack is not None
                         and kw.get("encoding", "utf-8").lower().replace("-", "") == "utf8"
                         and kw.get("encoding_errors", "strict") == "strict")

    async def execute(self, commands: Sequence[tuple[Any, ...]], *,
                      idempotent: bool = False) -> list[Any]:
        """Each command's reply, in order; an error reply is returned (as a pipeline's
        ``raise_on_error=False``), a connection error raised. ``idempotent``: the whole
        round trip is safe to send again after a lost connection (see the module's
        docstring)."""
        try:
            conn, idle = self._idle.pop(), True
        except IndexError:
            conn, idle = self._make(), False
        try:
            if idle and not idempotent and closed_by_server(conn):
                await conn.disconnect()  # the call connects again, on a fresh socket
            try:
                replies = await _acall(conn, commands, self._hiredis, idempotent)
            except ConnectionError:
                await conn.disconnect()
                if not (idle and idempotent):
                    raise
                replies = await _acall(conn, commands, self._hiredis,
                                       idempotent)  # the server closed it
        except BaseException:  # a cancel mid-reply leaves the connection out of step
            await conn.disconnect(nowait=True)
            raise
        self._idle.append(conn)
        return replies

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect()


def _packed(conn: Any, commands: Sequence[tuple[Any, ...]], hiredis: bool) -> list[bytes]:
    """The commands in the Redis protocol: by hiredis where it packs the same."""
    if not hiredis:
        return conn.pack_commands(commands)  # type: ignore[no-any-return]
    try:
        return [b"".join(_hiredis_pack(command) for command in commands)]
    except TypeError as exc:
        raise DataError(f"cannot send {exc}") from None


async def _acall(conn: Any, commands: Sequence[tuple[Any, ...]], hiredis: bool,
                 idempotent: bool) -> list[Any]:
    async def send() -> list[Any]:
        await conn.send_packed_command(_packed(conn, commands, hiredis))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies

    async def failed(_error: Exception) -> None:
        await conn.disconnect()

    if not idempotent:  # connecting is retried (nothing is sent then), the call is not
        await conn.connect()
        return await send()
    return await conn.retry.call_with_retry(send, failed)  # type: ignore[no-any-return]
