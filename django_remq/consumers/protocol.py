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

Everything here is hostile input: a frame is refused with a :class:`ClientError`
before it costs more than reading it (size, then nesting depth, then JSON), and the
refusal never echoes more than a few dozen characters of what the client sent.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from ..gateway_settings import CLIENT_OPTIONS

#: The original remq's spelling -> ours; ``attempts``, ``priority``, ``id`` are the same.
ORIGINAL_OPTIONS = {"retryCount": "retry_count", "retryDelayMs": "retry_delay_ms",
                    "delayUntil": "delay_until"}
FINAL = frozenset({"completed", "failed", "cancelled"})
#: Deepest nesting of arrays and objects a frame may have (the frame's own object is 1).
MAX_DEPTH = 64
#: Longest event name, queue name and task id a client may send.
MAX_NAME_LENGTH = 200
#: Emit options that park a job: capped by ``GATEWAY['max_client_delay_ms']``.
DELAY_OPTIONS = ("delay_ms", "retry_delay_ms")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


#: the longest message an ``error`` answer carries (then "... (N characters)"): an
#: engine error may quote a client's value whole, and an answer never echoes a frame back
MAX_MESSAGE = 400


class ClientError(Exception):
    """A frame the gateway refuses; becomes an ``error`` message, never a close."""

    def __init__(self, code: str, message: str, task_id: str | None = None) -> None:
        if len(message) > MAX_MESSAGE:
            message = f"{message[:MAX_MESSAGE]}... ({len(message)} characters)"
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
    if len(raw) > max_bytes:  # a character is at least a byte: no need to encode
        raise ClientError("too_large", f"frame of {len(raw)} characters or bytes is over the "
                          f"limit of {max_bytes} bytes (GATEWAY['max_message_bytes'])")
    try:
        size = len(raw) if isinstance(raw, bytes) or raw.isascii() else len(raw.encode())
        raw = raw.decode() if isinstance(raw, bytes) else raw
    except UnicodeError:
        raise ClientError("invalid_json", "frame is not valid UTF-8 text; send JSON") from None
    if size > max_bytes:
        raise ClientError("too_large", f"frame of {size} bytes is over the limit of "
                          f"{max_bytes} (GATEWAY['max_message_bytes'])")
    _check_depth(raw)
    try:
        msg = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except ValueError as exc:  # JSONDecodeError, an integer of over 4,300 digits
        raise ClientError("invalid_json", f"frame is not valid JSON: {str(exc)[:120]}") from None
    except RecursionError:  # _check_depth makes this unreachable; never a traceback
        raise ClientError("invalid_json", _too_deep()) from None
    if _SURROGATE_ESCAPE.search(raw):
        _check_unicode(msg)
    if not isinstance(msg, dict):
        raise ClientError("invalid_message", "send a JSON object, e.g. {\"type\": \"emit\", "
                          "\"event\": \"generate-report\", \"data\": {}}")
    kind = msg.get("type", "emit")  # the original's clients send a bare {"event", ...}
    if kind not in ("emit", "subscribe", "unsubscribe"):
        raise ClientError("unknown_type", f"unknown message type {_short(kind)}; use emit, "
                          "subscribe or unsubscribe")
    msg["type"] = kind
    return msg


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` before the recursive parser sees it.
    Counting brackets is one pass in C; only a frame with more than ``MAX_DEPTH`` of
    them is measured (strings taken out first, then a running sum in C too)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH:
        raise ClientError("invalid_json", _too_deep())


def _too_deep() -> str:
    return f"frame nests arrays and objects more than {MAX_DEPTH} deep; send flatter JSON"


def _no_constant(name: str) -> Any:
    raise ClientError("invalid_json", f"{name} is not JSON (NaN and Infinity cannot be sent)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ClientError("invalid_json", f"number {text[:40]} is out of range")
    return value


def _check_unicode(value: Any) -> None:
    """Text must be storable: a lone surrogate (``"\\ud800"``) cannot be UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ClientError("invalid_json", "frame has text that is not valid Unicode (a lone "
                          "surrogate escape such as \\ud800)") from None


def _short(value: Any, limit: int = 60) -> str:
    """A client's value in an answer: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def name_of(msg: Mapping[str, Any], field: str, what: str) -> str | None:
    """A name field (``queue``; absent is None): a string of at most
    :data:`MAX_NAME_LENGTH` characters."""
    value = msg.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ClientError("invalid_message", f"\"{field}\" must be a string, got "
                          f"{_short(value)}")
    if len(value) > MAX_NAME_LENGTH:
        raise ClientError("invalid_message", f"\"{field}\" is {len(value)} characters long; "
                          f"{what} has at most {MAX_NAME_LENGTH}")
    return value


def emit_fields(msg: Mapping[str, Any], allowed: frozenset[str] = CLIENT_OPTIONS
                ) -> tuple[str, str | None, Any, dict[str, Any]]:
    """``(event, queue, data, options)`` of an emit frame, shapes checked, the options in
    snake_case and within ``allowed``."""
    event = msg.get("event")
    if not isinstance(event, str) or not event:
        raise ClientError("missing_event", "emit needs \"event\": the name of a task")
    name_of(msg, "event", "an event name")
    queue = name_of(msg, "queue", "a queue name")
    options = msg.get("options") or {}
    if not isinstance(options, dict):
        raise ClientError("invalid_options", "\"options\" must be an object")
    return event, queue, msg.get("data"), client_options(options, allowed)


def check_client_delay(options: Mapping[str, Any], max_delay_ms: int,
                       now_ms: int | None = None) -> None:
    """Refuse a client's delay (``delay_ms``, ``retry_delay_ms``, ``delay_until``) beyond
    ``max_delay_ms``: a job parked for years is held for years. Values of the wrong type
    are left to the emit's own validation, which names the fix."""
    for key in DELAY_OPTIONS:
        value = options.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and value > max_delay_ms:
            raise ClientError("delay_too_long", f"{key!r} of {_short(value, 30)} ms is over "
                              f"the {max_delay_ms} ms a client may ask for "
                              "(GATEWAY['max_client_delay_ms'])")
    until = options.get("delay_until")
    if isinstance(until, int | float) and not isinstance(until, bool):
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if until - now_ms > max_delay_ms:
            raise ClientError("delay_too_long", f"'delay_until' {_short(until, 30)} is more "
                              f"than {max_delay_ms} ms away; a client may ask for at most "
                              "that (GATEWAY['max_client_delay_ms'])")


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
    task_id = name_of(msg, "taskId", "a task id")
    if not task_id:
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
