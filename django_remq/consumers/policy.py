"""``REMQ['GATEWAY']``: who may do what over the WebSocket gateway, and its limits.

The original remq trusts every client. Here the defaults are closed: signed-in users
may emit the allowed events and follow the tasks they emitted; staff may also follow
any task and open a broadcast connection. Each rule is a dotted path to a callable
(sync or async) taking the connection's ASGI ``scope`` first, so a project can say
otherwise; ``client_options`` says which emit options a client may set (never ``id``
unless listed). Limits bound what one client costs: a frame's size, the tasks one
connection follows, the tasks one user holds in flight across connections and gateway
processes, and how far ahead a client may delay a task; ``allowed_origins`` is read by
:mod:`.origin`. Validation is shared with ``manage.py check`` (:func:`gateway_problems`).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.utils.module_loading import import_string

from ..core.options import EMIT_KEYS
from .origin import origin_problem
from .protocol import CLIENT_OPTIONS

if TYPE_CHECKING:
    from ..conf import Problem

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
DEFAULT_MAX_IN_FLIGHT = 100
DEFAULT_MAX_IN_FLIGHT_PER_USER = 1000
DEFAULT_MAX_CLIENT_DELAY_MS = 86_400_000  # a day
POLICY_KEYS = ("can_emit", "can_subscribe", "can_broadcast")
#: The limits, each an int setting: (default, lowest allowed).
LIMITS = {"max_message_bytes": (DEFAULT_MAX_MESSAGE_BYTES, 1),
          "max_in_flight": (DEFAULT_MAX_IN_FLIGHT, 1),
          "max_in_flight_per_user": (DEFAULT_MAX_IN_FLIGHT_PER_USER, 1),
          "max_client_delay_ms": (DEFAULT_MAX_CLIENT_DELAY_MS, 0)}
GATEWAY_KEYS = ("allowed_events", *POLICY_KEYS, "client_options", *LIMITS, "allowed_origins")
SIGNATURES = {"can_emit": "(scope, event, queue, data) -> bool",
              "can_subscribe": "(scope, task_id, owner) -> bool",
              "can_broadcast": "(scope) -> bool"}


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
    """Staff only: a broadcast connection sees every task's data."""
    return _signed_in(scope) and bool(_user(scope).is_staff)


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
    client_options: frozenset[str] = CLIENT_OPTIONS  # emit options a client may set

    @classmethod
    def from_settings(cls, gateway: Mapping[str, Any]) -> GatewayPolicy:
        rules: dict[str, Any] = {key: _callable(gateway[key]) for key in POLICY_KEYS
                                 if gateway.get(key)}
        limits = {key: gateway.get(key, default) for key, (default, _) in LIMITS.items()}
        allowed, options = gateway.get("allowed_events"), gateway.get("client_options")
        return cls(allowed_events=None if allowed is None else frozenset(allowed),
                   client_options=CLIENT_OPTIONS if options is None else frozenset(options),
                   **limits, **rules)

    def allowed(self, event: str) -> bool:
        if self.allowed_events is not None:
            return event in self.allowed_events
        from ..decorators import registry

        return any(d.expose and d.event == event for d in registry)

    async def check(self, rule: str, *args: Any) -> bool:
        """Apply one rule; a sync callable runs in a thread (it may touch the database)."""
        fn = getattr(self, rule)
        if fn is DEFAULTS[rule]:
            return bool(fn(*args))  # no I/O: the user was resolved by AuthMiddleware
        if inspect.iscoroutinefunction(fn):
            return bool(await fn(*args))
        return bool(await sync_to_async(fn)(*args))


def _emit_options(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset) and all(
        isinstance(o, str) and o in EMIT_KEYS for o in value)


def _callable(value: Any) -> Callable[..., Any]:
    fn = import_string(value) if isinstance(value, str) else value
    if not callable(fn):
        raise TypeError(f"{value!r} is not callable")
    return fn  # type: ignore[no-any-return]


def gateway_problems(gateway: Any, *, import_paths: bool = True) -> list[Problem]:
    """Everything wrong with ``REMQ['GATEWAY']`` (ids remq.E020-E022)."""
    from ..conf import Problem

    if not isinstance(gateway, Mapping):
        return [Problem("remq.E020", f"REMQ['GATEWAY'] must be a dict, got "
                        f"{type(gateway).__name__}.", "Example: {'allowed_events': ['report']}.")]
    found = []
    for key in gateway:
        if key not in GATEWAY_KEYS:
            close = difflib.get_close_matches(str(key), GATEWAY_KEYS, n=1)
            found.append(Problem("remq.E020", f"REMQ['GATEWAY'] has an unknown key {key!r}.",
                                 f"Did you mean {close[0]!r}?" if close
                                 else f"Known keys: {', '.join(GATEWAY_KEYS)}."))
    allowed = gateway.get("allowed_events")
    if allowed is not None and (not isinstance(allowed, list | tuple | set | frozenset)
                                or not all(isinstance(e, str) and e for e in allowed)):
        found.append(Problem("remq.E021", f"REMQ['GATEWAY']['allowed_events'] must be a list "
                             f"of event names, got {allowed!r}.",
                             "Example: ['generate-report']; leave it out to allow the "
                             "handlers declared with @handler(..., expose=True)."))
    if not _emit_options(gateway.get("client_options", CLIENT_OPTIONS)):
        found.append(Problem("remq.E021", "REMQ['GATEWAY']['client_options'] must be a list "
                             f"of emit options, got {gateway['client_options']!r}.",
                             f"Choose from {', '.join(sorted(EMIT_KEYS))}; leave it out for "
                             f"{', '.join(sorted(CLIENT_OPTIONS))} (every one but 'id')."))
    for key, (default, low) in LIMITS.items():
        value = gateway.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            found.append(Problem("remq.E021", f"REMQ['GATEWAY'][{key!r}] must be an int "
                                 f">= {low}, got {value!r}.", f"Default: {default}."))
    return found + _origin_problems(gateway) + _rule_problems(gateway, import_paths)


def _origin_problems(gateway: Mapping[str, Any]) -> list[Problem]:
    from ..conf import Problem

    origins = gateway.get("allowed_origins")
    if origins is None:
        return []
    if isinstance(origins, str) or not isinstance(origins, list | tuple):
        return [Problem("remq.E021", f"REMQ['GATEWAY']['allowed_origins'] must be a list of "
                        f"origins, got {origins!r}.", "Example: ['https://app.example.com']; "
                        "leave it out to allow the site's own origin only (the Host of the "
                        "handshake, which ALLOWED_HOSTS must allow, on its port).")]
    return [Problem("remq.E021", f"REMQ['GATEWAY']['allowed_origins']: {why}.",
                    "Browsers send the page's origin: scheme, host and port, nothing else.")
            for why in map(origin_problem, origins) if why is not None]


def _rule_problems(gateway: Mapping[str, Any], import_paths: bool) -> list[Problem]:
    from ..conf import Problem

    found = []
    for key in POLICY_KEYS:
        value = gateway.get(key)
        if value is None:
            continue
        if not isinstance(value, str) and not callable(value):
            found.append(Problem("remq.E022", f"REMQ['GATEWAY'][{key!r}] must be a dotted path "
                                 f"to a callable, got {value!r}.",
                                 f"Example: 'myapp.gateway.{key}', a function {SIGNATURES[key]}."))
        elif import_paths and isinstance(value, str):
            try:
                _callable(value)
            except (ImportError, TypeError) as exc:
                found.append(Problem("remq.E022", f"REMQ['GATEWAY'][{key!r}] = {value!r} is not "
                                     f"an importable callable: {exc}.",
                                     f"Give the dotted path of a function {SIGNATURES[key]}."))
    return found
