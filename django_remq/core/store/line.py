"""Line: a bare stack of connections for script calls sent one at a time (``emit``).

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
probe catches, an idle connection the server closed, is met by sending once more on a
new connection: safe for what goes on a Line (``emit`` is idempotent by job id: a live
job is never enqueued twice). Otherwise errors behave as on the client: the command is
retried under the connection's own ``Retry`` policy, then raised. Only scripts go
through a Line: they have no reply callbacks, so the reply is the client's. A forked
child never uses its parent's connections.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from redis.exceptions import ConnectionError


class Line:
    """``execute_command`` on an idle connection of its own to ``client``'s Redis."""

    def __init__(self, client: redis.Redis) -> None:
        pool = client.connection_pool
        self._make: Any = lambda: pool.connection_class(**pool.connection_kwargs)
        self._idle: list[Any] = []  # redis.connection.AbstractConnection (untyped)
        self._pid = os.getpid()

    def execute_command(self, *args: Any) -> Any:
        if self._pid != os.getpid():  # a forked child: the parent's sockets are not ours
            self._idle, self._pid = [], os.getpid()
        try:
            conn, idle = self._idle.pop(), True
        except IndexError:
            conn, idle = self._make(), False
        try:
            reply = _call(conn, args)
        except ConnectionError:
            conn.disconnect()
            if not idle:
                raise
            # an idle connection the server closed meanwhile (its timeout, a restart, a
            # failover): once more on a new one, as the pool's probe would have done
            reply = _call(conn, args)
        self._idle.append(conn)
        return reply

    def close(self) -> None:
        """Close the idle connections (a call made later opens a new one)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.disconnect()


def _call(conn: Any, args: tuple[Any, ...]) -> Any:
    def send() -> Any:
        conn.send_command(*args)
        return conn.read_response()

    return conn.retry.call_with_retry(send, lambda _error: conn.disconnect())
