"""The gateway's wire protocol: parsing client frames, and the errors it answers.

Client -> server (the original remq's shapes, plus subscribe):
``{"type": "emit", "event", "queue"?, "data"?, "options"?}`` (or the original's bare
``{"event", ...}``), ``{"type": "subscribe", "taskId", "queue"?}``,
``{"type": "unsubscribe", "taskId"}``. Bad input gets ``{"type": "error", "code",
"message"}`` and the connection stays open.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: Emit options a client may set; the rest (``id``, debounce...) is the server's.
CLIENT_OPTIONS = frozenset({"attempts", "retry_count", "retry_delay_ms", "delay_ms",
                            "delay_until", "priority", "timeout_ms"})
FINAL = frozenset({"completed", "failed", "cancelled"})


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


def emit_fields(msg: Mapping[str, Any]) -> tuple[str, str | None, Any, dict[str, Any]]:
    """``(event, queue, data, options)`` of an emit frame, shapes checked."""
    event = msg.get("event")
    if not isinstance(event, str) or not event:
        raise ClientError("missing_event", "emit needs \"event\": the name of a task")
    queue = msg.get("queue")
    if queue is not None and not isinstance(queue, str):
        raise ClientError("invalid_message", f"\"queue\" must be a string, got {queue!r}")
    options = msg.get("options") or {}
    if not isinstance(options, dict):
        raise ClientError("invalid_options", "\"options\" must be an object")
    refused = sorted(set(options) - CLIENT_OPTIONS)
    if refused:
        raise ClientError("invalid_options", f"options {refused} cannot be set by a client; "
                          f"allowed: {', '.join(sorted(CLIENT_OPTIONS))}")
    return event, queue, msg.get("data"), dict(options)


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
