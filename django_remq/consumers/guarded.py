"""``GuardedConnection``: websockets' server connection, with bounds on what it would
buffer or read for a client without the application asking (``--expose``).

websockets parses every byte a socket read returns (256 KiB of the smallest frames
are some 37,000 frame objects, several MB), answers each ping with a pong whether or
not the client reads them, and after it starts a close reads and discards whatever
the client still sends until the close timeout. Here bytes read are parsed a slice at
a time while websockets wants frames (the rest wait as bytes, and the socket is not
read meanwhile); a client that makes us queue pongs it does not read, or goes on
sending after the close, is dropped (logged at debug level: a line per connection an
attacker opens would fill the log). The kernel's buffers of the socket are fixed at
:data:`SOCKET_BUFFER_BYTES` each way: left to grow, they hold megabytes for a client
that reads nothing before a send of ours even waits (and the send timeout starts).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

log = logging.getLogger("django_remq.gateway")

FEED_BYTES = 1024  # bytes read but not yet wanted are parsed this many at a time
UNREAD_REPLY_BYTES = 256 * 1024  # pongs queued for a client that reads nothing
CLOSING_READ_BYTES = 1 << 20  # read from a client once the close began, then dropped
SOCKET_BUFFER_BYTES = 128 * 1024  # SO_SNDBUF and SO_RCVBUF (Linux doubles them)


class GuardedConnection(ServerConnection):
    backlog = b""  # read from the socket; parsed up to ``fed``
    fed = 0
    unread_replies = 0
    closing_read = 0
    behind = False  # our writes wait for the client: it is not taking them

    def connection_made(self, transport: Any) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.backlog, self.fed = self.backlog[self.fed:] + data, 0
        self.catch_up()

    def catch_up(self) -> None:
        """Parse what was read, a slice at a time, while websockets wants frames
        (its queue pauses the transport's reading when full); the run_asgi pump calls
        this again as it takes frames."""
        while self.fed < len(self.backlog) and self.transport.is_reading():
            chunk = self.backlog[self.fed:self.fed + FEED_BYTES]
            self.fed += len(chunk)
            if self.protocol.state is State.CLOSING:
                self.closing_read += len(chunk)
                if self.closing_read > CLOSING_READ_BYTES:
                    self.drop("it goes on sending after the close")
                    return
            before = self.transport.get_write_buffer_size()
            super().data_received(chunk)
            if self.behind and self.replied(before) > UNREAD_REPLY_BYTES:
                self.drop("it sends pings and reads none of the pongs")
                return

    def replied(self, before: int) -> int:
        """Bytes websockets wrote on its own (pongs, a close) while the client is behind."""
        self.unread_replies += max(self.transport.get_write_buffer_size() - before, 0)
        return self.unread_replies

    def drop(self, why: str) -> None:
        log.debug("gateway: dropping %s: %s", peer(self), why)
        self.backlog, self.fed = b"", 0
        self.transport.abort()

    def pause_writing(self) -> None:
        super().pause_writing()
        self.behind = True

    def resume_writing(self) -> None:
        super().resume_writing()
        self.behind, self.unread_replies = False, 0


def peer(conn: Any) -> str:
    address = conn.transport.get_extra_info("peername") or ("?", 0)
    return f"{address[0]}:{address[1]}"
