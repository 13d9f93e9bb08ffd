"""``REMQ['GATEWAY']``: its keys, defaults and validation (remq.E020-E022).

The settings layer, beside :mod:`.conf`: the gateway (:mod:`django_remq.consumers`)
reads what is defined here, never the other way, so ``manage.py check`` validates
the gateway's settings without loading Channels or the consumer. What each key means
at run time is in :mod:`django_remq.consumers.policy` (the rules and limits) and
:mod:`django_remq.consumers.origin` (the Origin check).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.utils.module_loading import import_string

from .core.options import EMIT_KEYS
from .problems import Problem

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
DEFAULT_MAX_IN_FLIGHT = 100
DEFAULT_MAX_IN_FLIGHT_PER_USER = 1000
DEFAULT_MAX_CLIENT_DELAY_MS = 86_400_000  # a day
DEFAULT_MAX_FRAMES_PER_SECOND = 50
DEFAULT_MAX_CONNECTIONS = 1000  # per process
POLICY_KEYS = ("can_emit", "can_subscribe", "can_broadcast")
#: The limits, each an int setting: (default, lowest allowed); a default of None allows None.
LIMITS: dict[str, tuple[int | None, int]] = {
    "max_message_bytes": (DEFAULT_MAX_MESSAGE_BYTES, 1),
    "max_in_flight": (DEFAULT_MAX_IN_FLIGHT, 1),
    "max_in_flight_per_user": (DEFAULT_MAX_IN_FLIGHT_PER_USER, 1),
    "max_client_delay_ms": (DEFAULT_MAX_CLIENT_DELAY_MS, 0),
    "max_frames_per_second": (DEFAULT_MAX_FRAMES_PER_SECOND, 1),
    "max_connections": (DEFAULT_MAX_CONNECTIONS, 1),
    "max_connections_per_address": (None, 1),  # None (the default): no count per address
}
GATEWAY_KEYS = ("allowed_events", *POLICY_KEYS, "client_options", *LIMITS, "allowed_origins")
SIGNATURES = {"can_emit": "(scope, event, queue, data) -> bool",
              "can_subscribe": "(scope, task_id, owner) -> bool",
              "can_broadcast": "(scope) -> bool"}
#: Emit options a client may set by default (``GATEWAY['client_options']`` replaces this
#: set); the rest is the server's: ``id`` names a job, so a client's own could reach
#: another user's task (see the consumer's check when a project allows it).
CLIENT_OPTIONS = frozenset({"attempts", "retry_count", "retry_delay_ms", "delay_ms",
                            "delay_until", "priority", "timeout_ms"})
#: The schemes a browser page has, and their standard ports.
PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


def parse_origin(value: str) -> Origin | None:
    """``scheme://host[:port]`` as ``(scheme, host, port)``, lower case, the port filled
    in; None when ``value`` is not one (a path, user info, ``null``...)."""
    if not isinstance(value, str) or len(value) > 300:
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if (scheme not in PORTS or not parts.hostname or parts.path not in ("", "/")
            or parts.query or parts.fragment or "@" in parts.netloc):
        return None
    return scheme, parts.hostname.lower(), port or PORTS[scheme]


def origin_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an entry of ``allowed_origins`` (None: it can)."""
    if value == "*":
        return None
    if not isinstance(value, str) or parse_origin(value) is None:
        return (f"{value!r} is not an origin; write 'scheme://host[:port]' with scheme http "
                "or https and no path, e.g. 'https://app.example.com' or "
                "'http://localhost:8000', or '*' for any")
    return None


def load_callable(value: Any) -> Callable[..., Any]:
    """A rule given as a callable or as the dotted path of one."""
    fn = import_string(value) if isinstance(value, str) else value
    if not callable(fn):
        raise TypeError(f"{value!r} is not callable")
    return fn  # type: ignore[no-any-return]


def gateway_problems(gateway: Any, *, import_paths: bool = True) -> list[Problem]:
    """Everything wrong with ``REMQ['GATEWAY']`` (ids remq.E020-E022)."""
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
        if value is None and default is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            found.append(Problem("remq.E021", f"REMQ['GATEWAY'][{key!r}] must be an int "
                                 f">= {low}{' or None' if default is None else ''}, got "
                                 f"{value!r}.", f"Default: {default}."))
    return found + _origin_problems(gateway) + _rule_problems(gateway, import_paths)


def _emit_options(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset) and all(
        isinstance(o, str) and o in EMIT_KEYS for o in value)


def _origin_problems(gateway: Mapping[str, Any]) -> list[Problem]:
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
                load_callable(value)
            except (ImportError, TypeError) as exc:
                found.append(Problem("remq.E022", f"REMQ['GATEWAY'][{key!r}] = {value!r} is not "
                                     f"an importable callable: {exc}.",
                                     f"Give the dotted path of a function {SIGNATURES[key]}."))
    return found
