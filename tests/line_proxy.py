"""A TCP proxy in front of Redis that can lose a reply: the connection is cut once the
server has answered, before the client reads the answer (the call ran, the caller cannot
know). For the tests of what is sent again after a lost connection."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any
from urllib.parse import urlsplit


class CuttingProxy:
    """``with CuttingProxy(redis_url) as proxy: proxy.url``; ``proxy.cut_next_reply()``
    makes the next reply from the server close both sides instead of reaching the client.
    Each client connection gets its own connection to the server."""

    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.path = parts.path
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._cut = threading.Event()
        self._socks: list[socket.socket] = []
        self._closed = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}{self.path}"

    def cut_next_reply(self) -> None:
        self._cut.set()

    def __enter__(self) -> CuttingProxy:
        threading.Thread(target=self._accept, name="cutting-proxy", daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._closed = True
        self.listener.close()
        for sock in self._socks:
            _close(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.connections += 1
            self._socks += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        try:
            while data := source.recv(65536):
                if replies and self._cut.is_set():
                    self._cut.clear()
                    break
                sink.sendall(data)
        except OSError:  # the other pump closed this side
            pass
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
