"""The gateway's wire protocol: parsing client frames, and the errors it answers.

Client -> server (the original remq's shapes, plus subscribe):
``{"type": "emit", "event", "queue"?, "data"?, "options"?}`` (or the original's bare
``{"event", ...}``), ``{"type": "subscribe", "taskId", "queue"?}``,
``{"type": "unsubscribe", "taskId"}``. Bad input gets ``{"type": "error", "code",
"message"}`` and the connection stays open.

Emit options come in the original's camelCase (``retryCount``, ``retryDelayMs``,
``delayUntil`` as an ISO-8601 date or epoch ms) or in the Python API's snake_case;
:func:`client_options` turns them into snake_case here, once, so everything after
this module sees one spelling, and the client whitelist applies to that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

#: Emit options a client may set by default (``GATEWAY['client_options']`` replaces this
#: set); the rest is the server's: ``id`` names a job, so a client's own could reach
#: another user's task (see the consumer's check when a project allows it).
CLIENT_OPTIONS = frozenset({"attempts", "retry_count", "retry_delay_ms", "delay_ms",
                            "delay_until", "priority", "timeout_ms"})
#: The original remq's spelling -> ours; ``attempts``, ``priority``, ``id`` are the same.
ORIGINAL_OPTIONS = {"retryCount": "retry_count", "retryDelayMs": "retry_delay_ms",
                    "delayUntil": "delay_until"}
FINAL = frozenset({"completed", "failed", "cancelled"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ClientError(Exception):
    """A frame the gateway refuses; becomes an ``error`` message, never a close."""

    def __init__(self, code: str, message: str, task_id: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.task_id = code, message, task_id

    def frame(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.task_id is not None:
            out["taskId"] = self.task_id
        return out


def parse(raw: str | bytes | None, max_bytes: int) -> dict[str, Any]:
    """One client frame as a dict with a ``type``; raises :class:`ClientError`."""
    if raw is None:
        raise ClientError("invalid_json", "empty frame; send a JSON object")
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise ClientError("too_large", f"frame of {size} bytes is over the limit of "
                          f"{max_bytes} (GATEWAY['max_message_bytes'])")
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClientError("invalid_json", f"frame is not valid JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise ClientError("invalid_message", "send a JSON object, e.g. {\"type\": \"emit\", "
                          "\"event\": \"generate-report\", \"data\": {}}")
    kind = msg.get("type", "emit")  # the original's clients send a bare {"event", ...}
    if kind not in ("emit", "subscribe", "unsubscribe"):
        raise ClientError("unknown_type", f"unknown message type {kind!r}; use emit, "
                          "subscribe or unsubscribe")
    msg["type"] = kind
    return msg


def emit_fields(msg: Mapping[str, Any], allowed: frozenset[str] = CLIENT_OPTIONS
                ) -> tuple[str, str | None, Any, dict[str, Any]]:
    """``(event, queue, data, options)`` of an emit frame, shapes checked, the options in
    snake_case and within ``allowed``."""
    event = msg.get("event")
    if not isinstance(event, str) or not event:
        raise ClientError("missing_event", "emit needs \"event\": the name of a task")
    queue = msg.get("queue")
    if queue is not None and not isinstance(queue, str):
        raise ClientError("invalid_message", f"\"queue\" must be a string, got {queue!r}")
    options = msg.get("options") or {}
    if not isinstance(options, dict):
        raise ClientError("invalid_options", "\"options\" must be an object")
    return event, queue, msg.get("data"), client_options(options, allowed)


def client_options(options: Mapping[str, Any], allowed: frozenset[str] = CLIENT_OPTIONS
                   ) -> dict[str, Any]:
    """A client's emit options in the Python API's spelling, each one a client may set.

    A ``delayUntil`` / ``delay_until`` string (a JavaScript ``Date`` sent as JSON) becomes
    epoch ms; a number already is. Values are checked later, by the emit itself."""
    out: dict[str, Any] = {}
    spelled: dict[str, str] = {}  # our name -> the client's, for the errors
    for key, value in options.items():
        name = ORIGINAL_OPTIONS.get(key, key)
        if name != key and name in options:
            raise ClientError("invalid_options", f"options {key!r} and {name!r} are the same "
                              "option (the original remq's spelling and ours); give one")
        out[name], spelled[name] = value, key
    refused = [spelled[name] for name in out if name not in allowed]
    if refused:
        aliases = "".join(f", {k}" for k, name in ORIGINAL_OPTIONS.items() if name in allowed)
        raise ClientError("invalid_options", f"options {refused} cannot be set by a client; "
                          f"allowed: {', '.join(sorted(allowed))}{aliases} "
                          "(GATEWAY['client_options'] says which)")
    if isinstance(out.get("delay_until"), str):
        out["delay_until"] = _epoch_ms(spelled["delay_until"], out["delay_until"])
    return out


def _epoch_ms(key: str, text: str) -> int:
    """An ISO-8601 date with a time zone (``Date.toJSON()`` gives ``...Z``), in epoch ms."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ClientError("invalid_options", f"{key!r} must be an ISO-8601 date (e.g. "
                          f"\"2026-03-01T12:00:00.000Z\") or epoch milliseconds, got "
                          f"{text[:60]!r}") from None
    if moment.tzinfo is None:
        raise ClientError("invalid_options", f"{key!r} {text[:60]!r} has no time zone, so "
                          "it could mean any hour; add one (\"Z\" for UTC)")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def task_id_of(msg: Mapping[str, Any]) -> str:
    task_id = msg.get("taskId")
    if not isinstance(task_id, str) or not task_id or len(task_id) > 200:
        raise ClientError("invalid_message", f"{msg['type']} needs \"taskId\": the id that "
                          "\"queued\" returned")
    return task_id


def wants_broadcast(scope: Mapping[str, Any]) -> bool:
    """Header ``x-get-broadcast: true`` (the original's), or ``?broadcast=1`` (browsers)."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-get-broadcast" and value.strip().lower() in (b"true", b"1"):
            return True
    from urllib.parse import parse_qs

    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return any(v.lower() in ("1", "true") for v in query.get("broadcast", ()))
