"""``runworker_remq --expose [HOST:]PORT``: the gateway served from the worker process.

The original remq's ``expose`` opens a WebSocket server inside the worker. Here the
worker runs the same ASGI application a project mounts (``TaskGatewayConsumer``
behind the Origin check and ``AuthMiddlewareStack``), served on the worker's own
event loop by a small ASGI adapter over the ``websockets`` package, so a client
written for the original connects to ``ws://host:PORT/`` (or ``/ws/remq/``).
Events still travel through the channel layer, as from any other worker.

It listens on 127.0.0.1 unless told otherwise (``--expose 0.0.0.0:PORT``). This
process runs the tasks, so what a client sends or leaves unread is bounded, never
buffered without end:

- a frame over ``GATEWAY['max_message_bytes']`` closes the connection (1009) before
  it is read; at most :data:`MAX_QUEUE` frames wait in websockets and
  :data:`INBOX_FRAMES` in the adapter, then the socket is not read until the
  application has taken them (TCP backpressure: the client's sends block);
- a client that leaves our messages unread for :data:`SEND_TIMEOUT_S` is closed with
  :data:`SLOW_CLIENT_CODE`; an opening handshake not done within
  :data:`OPEN_TIMEOUT_S` is dropped;
- what websockets itself would buffer or read without asking us (tiny frames parsed
  by the ten thousand, pongs no one reads, data sent after the close) is bounded by
  :class:`.guarded.GuardedConnection`; no permessage-deflate (a compressor's state
  per connection, for JSON frames of a few hundred bytes).

Differences from a full ASGI server: one protocol (WebSocket), and the handshake
completes before the application runs, so a refused connection (bad Origin) is
closed with code 4003 rather than answered 403; a frame over the limit closes the
connection (1009) rather than being answered ``too_large``.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import WebsocketDenier
from django.urls import path

from ..conf import get_settings
from ..core.errors import RemqError
from .gateway import TaskGatewayConsumer
from .policy import GatewayPolicy

log = logging.getLogger("django_remq.gateway")

ASGIApp = Callable[..., Awaitable[None]]
Closer = Callable[[], Awaitable[None]]

DEFAULT_HOST = "127.0.0.1"  # this machine only: --expose 0.0.0.0:PORT opens it wider
OPEN_TIMEOUT_S = 10.0  # a connection must finish its HTTP upgrade within this
SEND_TIMEOUT_S = 10.0  # a message the client has not taken by then: it is not reading
CLOSE_TIMEOUT_S = 10.0  # the closing handshake, then the socket is dropped
SLOW_CLIENT_CODE = 1013  # "try again later": the client fell behind its messages
MAX_QUEUE = 4  # frames websockets holds before it stops reading the socket
INBOX_FRAMES = 2  # messages handed to the application ahead of it
WRITE_LIMIT = 64 * 1024  # outgoing bytes buffered before a send waits for the client
APP_EXIT_S = 5.0  # the application's time to finish after its client is gone
STOP_CLOSE_S = 2.0  # on stop, clients' time to take their close (1001), then dropped


class ExposeUnavailable(RemqError):
    """The gateway cannot listen where it was asked to (address taken, not local...)."""


class OriginCheck:
    """The gateway's Origin rule (:func:`.origin.origin_allowed`: the site's own
    ``scheme://host:port``, or ``GATEWAY['allowed_origins']``), for a server whose
    handshake is done before the application runs: a refused one is closed with 4003.
    A handshake with no ``Origin`` (a non-browser client, like the original's Node/Deno
    ones) goes on: only browsers send someone else's cookies, and they always send it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from .origin import origin_allowed

        origin, host = (next((v for k, v in scope["headers"] if k == name), None)
                        for name in (b"origin", b"host"))
        allowed = get_settings().gateway.get("allowed_origins")
        if origin_allowed(None if origin is None else origin.decode("latin-1"),
                          None if host is None else host.decode("latin-1"), allowed,
                          scheme=scope["scheme"]):
            await self.app(scope, receive, send)
            return
        log.info("gateway: refused a WebSocket handshake from Origin %.100r (Host %.100r): "
                 "a browser page may connect from %s", origin, host,
                 "REMQ['GATEWAY']['allowed_origins']" if allowed is not None
                 else "this server's own origin, or REMQ['GATEWAY']['allowed_origins']")
        await WebsocketDenier.as_asgi()(scope, receive, send)


def gateway_application() -> ASGIApp:
    consumer = TaskGatewayConsumer.as_asgi()
    router = URLRouter([path("", consumer), path("ws/remq/", consumer)])
    return OriginCheck(AuthMiddlewareStack(router))


async def serve(port: int, host: str = DEFAULT_HOST, app: ASGIApp | None = None) -> Closer:
    """Start serving on the running loop; returns the coroutine function that stops it."""
    try:
        from websockets.asyncio.server import serve as ws_serve
    except ImportError:
        raise RuntimeError("--expose needs the websockets package: pip install "
                           "'django-remq[expose]'") from None
    from .guarded import GuardedConnection

    application = app or gateway_application()
    limit = GatewayPolicy.from_settings(get_settings().gateway).max_message_bytes
    live: set[Any] = set()

    async def handler(conn: Any) -> None:
        live.add(conn)
        try:
            await run_asgi(application, conn)
        finally:
            live.discard(conn)

    try:
        server = await ws_serve(
            handler, host, port,
            create_connection=GuardedConnection, compression=None,
            open_timeout=OPEN_TIMEOUT_S, close_timeout=CLOSE_TIMEOUT_S, max_size=limit,
            max_queue=MAX_QUEUE, write_limit=WRITE_LIMIT)
    except OSError as exc:
        raise ExposeUnavailable(
            f"--expose: cannot listen on {_url(host, port)} ({exc.strerror or exc}); choose "
            "a free port, and a host that is an address of this machine (127.0.0.1, "
            "[::1], or 0.0.0.0 for every interface)") from None
    log.info("gateway: serving WebSocket clients on %s%s", _url(host, port),
             "" if _local(host) else " (reachable from other machines)")

    async def close() -> None:
        server.close()
        try:
            async with asyncio.timeout(STOP_CLOSE_S):
                await server.wait_closed()
        except TimeoutError:  # a client that reads nothing does not hold the stop up
            for conn in live:
                conn.transport.abort()
            await server.wait_closed()

    return close


async def run_asgi(app: ASGIApp, conn: Any) -> None:
    """One WebSocket connection, handed to an ASGI application. Frames go to it one
    bounded queue at a time: while it is behind, the client's frames are not read."""
    request = conn.request
    route, _, query = request.path.partition("?")
    scope = {
        "type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "scheme": "ws", "path": route, "raw_path": route.encode(), "root_path": "",
        "query_string": query.encode(), "subprotocols": [],
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in request.headers.raw_items()],
        "client": tuple(conn.remote_address[:2]), "server": tuple(conn.local_address[:2]),
    }
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=INBOX_FRAMES)
    inbox.put_nowait({"type": "websocket.connect"})

    async def send(message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            text = message.get("text")
            await _send(conn, text if text is not None else message["bytes"])
        elif kind == "websocket.close":
            await _close(conn, message.get("code") or 4003, message.get("reason") or "")

    task = asyncio.ensure_future(app(scope, inbox.get, send))
    pump = asyncio.ensure_future(_pump(conn, inbox))
    await asyncio.wait({task, pump}, return_when=asyncio.FIRST_COMPLETED)
    if not pump.done():  # the application ended first: so does the connection
        pump.cancel()
        await _close(conn, 1011 if _failed(task) else 1000, "")
        return
    disconnect = {"type": "websocket.disconnect", "code": conn.protocol.close_code or 1006}
    try:
        await asyncio.wait_for(_tell(task, inbox, disconnect), APP_EXIT_S)
    except TimeoutError:
        task.cancel()
    except Exception:
        log.exception("gateway: the application failed after its client left")


async def _pump(conn: Any, inbox: asyncio.Queue[dict[str, Any]]) -> None:
    """Frames into the application's inbox; waits (and so stops reading) while it is full."""
    try:
        async for frame in conn:
            conn.catch_up()  # websockets may want more of what was read already
            await inbox.put({"type": "websocket.receive", **(
                {"text": frame} if isinstance(frame, str) else {"bytes": frame})})
    except Exception as exc:  # a broken connection ends like a closed one
        log.debug("gateway: connection ended: %s", exc)


async def _tell(task: asyncio.Future[None], inbox: asyncio.Queue[dict[str, Any]],
                message: dict[str, Any]) -> None:
    """``message`` to the application once its inbox has room, then wait for it to end."""
    put = asyncio.ensure_future(inbox.put(message))
    try:
        await asyncio.wait({put, task}, return_when=asyncio.FIRST_COMPLETED)
        await task
    finally:
        put.cancel()


async def _send(conn: Any, data: str | bytes) -> None:
    from websockets.exceptions import ConnectionClosed

    from .guarded import peer

    try:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await conn.send(data)
    except TimeoutError:
        log.info("gateway: closing the connection of %s: it has not read its messages "
                 "for %.0f s", peer(conn), SEND_TIMEOUT_S)
        await _close(conn, SLOW_CLIENT_CODE, "you are not reading your messages")
    except ConnectionClosed:  # its disconnect is on its way to the application
        pass


async def _close(conn: Any, code: int, reason: str) -> None:
    """The closing handshake; a client that reads nothing never answers it: dropped."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await conn.close(code, reason)
    except TimeoutError:
        conn.transport.abort()


def _failed(task: asyncio.Future[None]) -> bool:
    if task.cancelled():
        return True
    exc = task.exception()
    if exc is not None:
        log.error("gateway: the application failed", exc_info=exc)
    return exc is not None


def _local(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def _url(host: str, port: int) -> str:
    return f"ws://[{host}]:{port}/" if ":" in host else f"ws://{host}:{port}/"


_hosts: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def listen_on(tm: Any, host: str) -> None:
    """Where ``tm``'s ``expose=PORT`` listens (``runworker_remq --expose HOST:PORT``)."""
    _hosts[tm] = host


async def serve_for(tm: Any, port: int, host: str | None = None) -> Closer:
    """Serve for ``tm`` (see :func:`django_remq.consumers.gateway_server`): on ``host``,
    else where :func:`listen_on` said, else on :data:`DEFAULT_HOST`."""
    return await serve(port, host or _hosts.get(tm, DEFAULT_HOST))
