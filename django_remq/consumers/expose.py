"""``runworker_remq --expose PORT``: the gateway served from the worker process.

The original remq's ``expose`` opens a WebSocket server inside the worker. Here the
worker runs the same ASGI application a project mounts (``TaskGatewayConsumer``
behind the Origin check and ``AuthMiddlewareStack``), served on the worker's own
event loop by a small ASGI adapter over the ``websockets`` package, so a client
written for the original connects to ``ws://host:PORT/`` (or ``/ws/remq/``).
Events still travel through the channel layer, as from any other worker.

Differences from a full ASGI server: one protocol (WebSocket), and the handshake
completes before the application runs, so a refused connection (bad Origin) is
closed with code 4003 rather than answered 403.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from ..conf import get_settings
from .gateway import TaskGatewayConsumer
from .policy import GatewayPolicy

log = logging.getLogger("django_remq.gateway")

ASGIApp = Callable[..., Awaitable[None]]
Closer = Callable[[], Awaitable[None]]


class BrowserOriginValidator(OriginValidator):  # type: ignore[misc]
    """``AllowedHostsOriginValidator``, except that a frame with no ``Origin`` (a
    non-browser client, like the original's Node/Deno ones) is let through: only
    browsers send cross-site requests with someone else's cookies, and they always
    send ``Origin``."""

    def valid_origin(self, parsed_origin: Any) -> bool:
        return parsed_origin is None or bool(super().valid_origin(parsed_origin))


def gateway_application() -> ASGIApp:
    consumer = TaskGatewayConsumer.as_asgi()
    hosts = list(settings.ALLOWED_HOSTS) or (["localhost", "127.0.0.1", "[::1]"]
                                             if settings.DEBUG else [])
    router = URLRouter([path("", consumer), path("ws/remq/", consumer)])
    return BrowserOriginValidator(AuthMiddlewareStack(router), hosts)


async def serve(port: int, host: str = "0.0.0.0", app: ASGIApp | None = None) -> Closer:
    """Start serving on the running loop; returns the coroutine function that stops it."""
    try:
        from websockets.asyncio.server import serve as ws_serve
    except ImportError:
        raise RuntimeError("--expose needs the websockets package: pip install "
                           "'django-remq[expose]'") from None
    application = app or gateway_application()
    limit = GatewayPolicy.from_settings(get_settings().gateway).max_message_bytes
    server = await ws_serve(lambda conn: run_asgi(application, conn), host, port,
                            max_size=max(4 * limit, 1 << 20))
    log.info("gateway: serving WebSocket clients on ws://%s:%d/", host, port)

    async def close() -> None:
        server.close()
        await server.wait_closed()

    return close


async def run_asgi(app: ASGIApp, conn: Any) -> None:
    """One WebSocket connection, handed to an ASGI application."""
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
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbox.put_nowait({"type": "websocket.connect"})

    async def send(message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            text = message.get("text")
            await conn.send(text if text is not None else message["bytes"])
        elif kind == "websocket.close":
            await conn.close(message.get("code") or 4003, message.get("reason") or "")

    task = asyncio.ensure_future(app(scope, inbox.get, send))
    try:
        async for frame in conn:
            inbox.put_nowait({"type": "websocket.receive",
                              **({"text": frame} if isinstance(frame, str) else {"bytes": frame})})
    except Exception as exc:  # a broken connection ends like a closed one
        log.debug("gateway: connection ended: %s", exc)
    inbox.put_nowait({"type": "websocket.disconnect", "code": conn.close_code or 1006})
    try:
        await asyncio.wait_for(task, 5)
    except Exception:
        task.cancel()


async def serve_for(tm: Any, port: int) -> Closer:
    """The engine's ``gateway_server`` hook (``TaskManager.init(expose=PORT)``)."""
    return await serve(port)
