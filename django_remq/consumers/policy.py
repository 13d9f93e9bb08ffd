"""``REMQ['GATEWAY']``: who may do what over the WebSocket gateway, and its limits.

The original remq trusts every client. Here the defaults are closed: signed-in users
may emit the allowed events and follow the tasks they emitted; staff may also follow
any task and open a broadcast connection. Each rule is a dotted path to a callable
(sync or async) taking the connection's ASGI ``scope`` first, so a project can say
otherwise; ``client_options`` says which emit options a client may set (never ``id``
unless listed). Limits bound what one client costs: the connections a process holds
(in all and per address: :mod:`.admission`), a frame's size, the tasks one connection
follows, the tasks one user holds in flight across connections and gateway processes,
and how far ahead a client may delay a task; ``allowed_origins`` is read by
:mod:`.origin`. The keys, their defaults and their validation (shared with ``manage.py
check``) are the settings layer's: :mod:`django_remq.gateway_settings`.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest
from django.utils.module_loading import import_string

from ..conf import get_settings
from ..decorators import registry
from ..gateway_settings import (
    CLIENT_OPTIONS,
    DEFAULT_MAX_CLIENT_DELAY_MS,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_FRAMES_PER_SECOND,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_IN_FLIGHT_PER_USER,
    DEFAULT_MAX_MESSAGE_BYTES,
    LIMITS,
    POLICY_KEYS,
    load_callable,
)


def _user(scope: Mapping[str, Any]) -> Any:
    return scope.get("user")


def _signed_in(scope: Mapping[str, Any]) -> bool:
    user = _user(scope)
    return bool(user is not None and getattr(user, "is_authenticated", False))


def default_can_emit(scope: Mapping[str, Any], event: str, queue: str, data: Any) -> bool:
    """Signed-in users (the event must also be allowed: checked before this)."""
    return _signed_in(scope)


def default_can_subscribe(scope: Mapping[str, Any], task_id: str, owner: str | None) -> bool:
    """Staff follow any task; other signed-in users only those they emitted."""
    if not _signed_in(scope):
        return False
    user = _user(scope)
    return bool(user.is_staff) or (owner is not None and owner == str(user.pk))


def default_can_broadcast(scope: Mapping[str, Any]) -> bool:
    """Staff, and ``REMQ["ADMIN_PERMISSION"]`` when set (asked with the handshake as its
    request): a broadcast connection sees every task's data, as the admin pages do, and
    feeds their live refresh, so who may not see the pages may not see it either."""
    if not (_signed_in(scope) and bool(_user(scope).is_staff)):
        return False
    path = get_settings().admin_permission
    return True if not path else bool(import_string(path)(handshake_request(scope)))


def handshake_request(scope: Mapping[str, Any]) -> HttpRequest:
    """The WebSocket handshake as a Django request (its path, headers, cookies, user and
    session), for a rule written for the admin pages' requests."""
    request = ASGIRequest({**scope, "method": "GET"}, io.BytesIO())
    request.user = _user(scope)
    if "session" in scope:
        request.session = scope["session"]
    return request


DEFAULTS: dict[str, Callable[..., Any]] = {"can_emit": default_can_emit,
                                           "can_subscribe": default_can_subscribe,
                                           "can_broadcast": default_can_broadcast}


@dataclass(frozen=True)
class GatewayPolicy:
    """The validated ``GATEWAY`` dict."""

    allowed_events: frozenset[str] | None = None  # None: the handlers with expose=True
    can_emit: Callable[..., Any] = default_can_emit
    can_subscribe: Callable[..., Any] = default_can_subscribe
    can_broadcast: Callable[..., Any] = default_can_broadcast
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT  # followed by one connection
    max_in_flight_per_user: int = DEFAULT_MAX_IN_FLIGHT_PER_USER  # emitted, unfinished
    max_client_delay_ms: int = DEFAULT_MAX_CLIENT_DELAY_MS
    max_frames_per_second: int = DEFAULT_MAX_FRAMES_PER_SECOND  # per connection
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # open in this process
    max_connections_per_address: int | None = None  # open in this process, per client address
    client_options: frozenset[str] = CLIENT_OPTIONS  # emit options a client may set

    @classmethod
    def from_settings(cls, gateway: Mapping[str, Any]) -> GatewayPolicy:
        rules: dict[str, Any] = {key: load_callable(gateway[key]) for key in POLICY_KEYS
                                 if gateway.get(key)}
        limits = {key: gateway.get(key, default) for key, (default, _) in LIMITS.items()}
        allowed, options = gateway.get("allowed_events"), gateway.get("client_options")
        return cls(allowed_events=None if allowed is None else frozenset(allowed),
                   client_options=CLIENT_OPTIONS if options is None else frozenset(options),
                   **limits, **rules)

    def allowed(self, event: str) -> bool:
        if self.allowed_events is not None:
            return event in self.allowed_events
        return any(d.expose and d.event == event for d in registry)

    async def check(self, rule: str, *args: Any) -> bool:
        """Apply one rule; a sync callable runs in a thread (it may touch the database)."""
        fn = getattr(self, rule)
        if fn is DEFAULTS[rule] and not (rule == "can_broadcast"
                                         and get_settings().admin_permission):
            return bool(fn(*args))  # no I/O: the user was resolved by AuthMiddleware
        if inspect.iscoroutinefunction(fn):
            return bool(await fn(*args))
        return bool(await sync_to_async(fn)(*args))
