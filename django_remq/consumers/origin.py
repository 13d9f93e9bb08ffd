"""The gateway's Origin check, ports included: :class:`RemqOriginValidator`.

Channels' ``AllowedHostsOriginValidator`` compares an ``Origin``'s host with
``ALLOWED_HOSTS`` and ignores its port, so a page of another web app on the same host
(``http://127.0.0.1:1`` beside a site on ``127.0.0.1:8000``) could open a gateway
connection that carries the site's session cookie, and emit as its user. Here an
Origin must be exactly an allowed ``scheme://host[:port]``:

- ``REMQ['GATEWAY']['allowed_origins']`` when set (``"*"`` allows any);
- otherwise the site itself: the handshake's ``Host`` header, which ``ALLOWED_HOSTS``
  must allow, on the same port (no port in ``Host``: the scheme's standard port, so a
  site behind a TLS proxy works), and over ``wss`` only an ``https`` page.

A handshake without ``Origin`` is let through: only browsers send someone else's
cookies across sites, and they always send ``Origin`` (the original remq's Node
clients send none). :func:`origin_allowed` is the rule alone, for any server; what an
``allowed_origins`` entry may be is the settings layer's (:mod:`django_remq.gateway_settings`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from ..conf import get_settings
from ..gateway_settings import PORTS, parse_origin

log = logging.getLogger("django_remq.gateway")


def _site(host: str | None, allowed_hosts: Sequence[str] | None) -> tuple[str, int | None] | None:
    """The ``Host`` header as ``(host, port or None)`` if ``ALLOWED_HOSTS`` allows it."""
    from django.http.request import split_domain_port, validate_host

    if not host or len(host) > 300:
        return None
    domain, port = split_domain_port(host.strip())
    if not domain or (port and not port.isdigit()):
        return None
    if allowed_hosts is None:
        from django.conf import settings

        allowed_hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed_hosts:  # as Django's own request.get_host()
            allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    if not validate_host(domain, allowed_hosts):
        return None
    return domain.strip("[]"), int(port) if port else None


def origin_allowed(origin: str | None, host: str | None, allowed: Sequence[str] | None,
                   *, scheme: str | None = None,
                   allowed_hosts: Sequence[str] | None = None) -> bool:
    """Whether a WebSocket handshake with this ``Origin`` (None: no such header) may
    go on. ``host``: its ``Host`` header; ``allowed``: ``allowed_origins``, None for
    the site's own origin (``ALLOWED_HOSTS``, or ``allowed_hosts``, must allow
    ``host``); ``scheme``: the handshake's (``wss`` asks for an ``https`` page)."""
    if origin is None:
        return True
    parsed = parse_origin(origin)
    if parsed is None:
        return False
    if allowed is not None:
        return any(entry == "*" or parse_origin(entry) == parsed for entry in allowed)
    site = _site(host, allowed_hosts)
    if site is None:
        return False
    page_scheme, page_host, page_port = parsed
    domain, port = site
    if page_host != domain or (scheme in ("wss", "https") and page_scheme != "https"):
        return False
    return page_port == (PORTS[page_scheme] if port is None else port)


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


ASGIApp = Callable[[Mapping[str, Any], Any, Any], Awaitable[None]]


class RemqOriginValidator:
    """ASGI middleware for the gateway's stack, in place of Channels'
    ``AllowedHostsOriginValidator``: a refused handshake is closed before the
    application sees it (daphne answers 403). Settings are read per handshake."""

    def __init__(self, application: ASGIApp) -> None:
        self.application = application

    async def __call__(self, scope: Mapping[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "websocket" and not self.allows(scope):
            from channels.security.websocket import WebsocketDenier

            await WebsocketDenier.as_asgi()(scope, receive, send)
            return
        await self.application(scope, receive, send)

    @staticmethod
    def allows(scope: Mapping[str, Any]) -> bool:
        headers = scope.get("headers", ())
        origin, host = _header(headers, b"origin"), _header(headers, b"host")
        allowed = get_settings().gateway.get("allowed_origins")
        if origin_allowed(origin, host, allowed, scheme=scope.get("scheme")):
            return True
        log.info("gateway: refused a WebSocket handshake from Origin %.100r (Host %.100r); "
                 "allowed: %s", origin, host, "REMQ['GATEWAY']['allowed_origins'] = "
                 f"{list(allowed)!r}" if allowed is not None else "the site's own origin "
                 "(set REMQ['GATEWAY']['allowed_origins'] to allow others)")
        return False


#: The name the documented ``asgi.py`` uses (docs/gateway.md).
OriginValidator = RemqOriginValidator
