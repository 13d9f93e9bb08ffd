"""Validation of per-task and per-handler options, with the original remq's common mistakes.

Runs where the options are written (``emit``, ``register_handler``), so a typo is
an error at the call site, not a surprise on a worker at 3 a.m.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .errors import InvalidOptions, PayloadTooLarge

EMIT_KEYS = frozenset(
    {"id", "attempts", "retry_count", "retry_delay_ms", "delay_until", "delay_ms", "priority",
     "timeout_ms"}
)
HANDLER_ONLY_KEYS = frozenset({"debounce", "repeat"})
HANDLER_KEYS = (EMIT_KEYS - {"id", "delay_until", "delay_ms"}) | HANDLER_ONLY_KEYS
#: processor settings people put on a task by mistake -> the processor section they belong in
PROCESSOR_ONLY_KEYS = {"should_retry": "retry", "max_retries": "retry", "backoff": "retry",
                       "should_send_to_dlq": "dlq", "stream_key": "dlq"}

#: The longest delay or duration an option may ask for: 100 years, in ms.
MAX_MS = 100 * 365 * 86_400_000
#: Accepted ranges of the int options (inclusive).
INT_RANGES: dict[str, tuple[int, int]] = {
    "attempts": (0, 100_000), "retry_count": (0, 100_000), "retry_delay_ms": (0, MAX_MS),
    "delay_ms": (0, MAX_MS), "priority": (-100, 100), "timeout_ms": (1, MAX_MS)}
#: ``delay_until`` numbers below this are seconds, not ms (1e11 ms is March 1973).
SECONDS_LOOKALIKE = 100_000_000_000
MAX_ID_LENGTH = 200
#: The default of ``max_payload_bytes``: the most a task's data (and a handler's result)
#: may take as JSON. A queue carries references to bulk content, not the content: every
#: worker and admin page that reads a job reads its data whole.
MAX_PAYLOAD_BYTES = 1_048_576
_SPACE = re.compile(r"\s")  # the characters str.isspace() is true for


def _suggest(key: str, allowed: frozenset[str]) -> str:
    close = difflib.get_close_matches(key, sorted(allowed), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _check_keys(where: str, options: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in options:
        if key in allowed:
            continue
        if key in PROCESSOR_ONLY_KEYS:
            section = PROCESSOR_ONLY_KEYS[key]
            raise InvalidOptions(
                f"{where}: {key!r} is a processor setting, not a per-task option; set it in "
                f"processor={{{section!r}: {{{key!r}: ...}}}} (REMQ['PROCESSOR'] under Django)."
            )
        if key in HANDLER_ONLY_KEYS:
            raise InvalidOptions(
                f"{where}: {key!r} belongs to the handler, not to one emit; pass it to "
                f"register_handler(options={{{key!r}: ...}}) or @handler({key}=...)."
            )
        raise InvalidOptions(
            f"{where}: unknown option {key!r}.{_suggest(key, allowed)} "
            f"Allowed: {', '.join(sorted(allowed))}."
        )


def _check_common(where: str, options: Mapping[str, Any]) -> None:
    if "attempts" in options and "retry_count" in options:
        raise InvalidOptions(
            f"{where}: 'attempts' and 'retry_count' mean the same thing (number of retries); "
            "use one."
        )
    for key, (low, high) in INT_RANGES.items():
        value = options.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidOptions(f"{where}: {key!r} must be an int, got {value!r}.")
        if key == "timeout_ms" and value == 0:
            raise InvalidOptions(f"{where}: 'timeout_ms' must be >= 1 ms; for no timeout leave "
                                 "it out or pass None.")
        if key == "priority" and not low <= value <= high:
            raise InvalidOptions(f"{where}: 'priority' must be an int in -100..100 (higher "
                                 f"runs first, 0 is the default), got {value}.")
        if not low <= value <= high:
            raise InvalidOptions(f"{where}: {key!r} must be >= {low} and <= {high}, "
                                 f"got {value}.")


def validate_emit_options(event: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a plain copy of ``options`` or raise :class:`InvalidOptions` naming the fix."""
    if options is None:
        return {}
    where = f"emit({event!r})"
    if not isinstance(options, Mapping):
        raise InvalidOptions(f"{where}: options must be a dict, got {type(options).__name__}.")
    _check_keys(where, options, EMIT_KEYS)
    _check_common(where, options)
    if "id" in options:
        validate_job_id(options["id"])
    if "delay_until" in options and "delay_ms" in options:
        raise InvalidOptions(f"{where}: give 'delay_until' or 'delay_ms', not both.")
    if options.get("delay_until") is not None:
        _check_delay_until(where, options["delay_until"])
    return dict(options)


def _check_delay_until(where: str, when: Any) -> None:
    if isinstance(when, datetime | timedelta):
        if isinstance(when, timedelta) and when < timedelta(0):
            raise InvalidOptions(f"{where}: 'delay_until' as a timedelta must not be negative, "
                                 f"got {when}.")
        return
    if not isinstance(when, int | float) or isinstance(when, bool) or not math.isfinite(when):
        raise InvalidOptions(f"{where}: 'delay_until' must be a datetime, a timedelta or epoch "
                             f"milliseconds, got {when!r}.")
    if when < SECONDS_LOOKALIKE:
        raise InvalidOptions(f"{where}: delay_until={when!r} looks like seconds since the epoch; "
                             "pass a datetime or milliseconds (e.g. int(time.time() * 1000)).")
    if when > time.time() * 1000 + MAX_MS:
        raise InvalidOptions(f"{where}: delay_until={when!r} is more than 100 years away; "
                             "pass epoch milliseconds.")


def check_emit_item(n: int, item: Any) -> None:
    """One item of ``emit_many``: a dict, or an error saying what it should be."""
    if not isinstance(item, Mapping):
        raise InvalidOptions(
            f"emit_many item {n}: must be a dict with 'event' (and optionally 'queue', 'data', "
            f"'options'), e.g. {{'event': 'send-email', 'data': {{...}}}}; got "
            f"{str(item)[:60]!r} ({type(item).__name__}).")


def validate_handler_options(event: str, options: Mapping[str, Any] | None,
                             where: str | None = None) -> dict[str, Any]:
    """The keys and the plain values (``debounce`` and ``repeat`` are parsed by
    :func:`..handlers.parse_handler_options`); ``where`` names the declaration in errors."""
    where = where or f"register_handler({event!r})"
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise InvalidOptions(f"{where}: options must be a dict, got {type(options).__name__}.")
    if "id" in options or "delay_until" in options or "delay_ms" in options:
        bad = next(k for k in ("id", "delay_until", "delay_ms") if k in options)
        raise InvalidOptions(f"{where}: {bad!r} is chosen per emit, not per handler.")
    _check_keys(where, options, HANDLER_KEYS)
    _check_common(where, options)
    return dict(options)


def new_job_id() -> str:
    """A random id of 32 hex characters, as ``uuid4().hex`` (which costs 4x more on emit's
    hot path; the version bits it sets carry nothing here)."""
    return os.urandom(16).hex()


def validate_job_id(job_id: Any) -> str:
    if not isinstance(job_id, str) or not job_id:
        raise InvalidOptions(f"job id must be a non-empty string, got {job_id!r}.")
    if len(job_id) > MAX_ID_LENGTH or _SPACE.search(job_id):
        raise InvalidOptions(
            f"job id {job_id[:50]!r} must be at most {MAX_ID_LENGTH} characters, "
            "without whitespace."
        )
    return job_id


def validate_payload_limit(value: Any) -> int | None:
    """``max_payload_bytes``: bytes >= 1, or ``None`` for no limit."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise InvalidOptions(f"max_payload_bytes must be an int >= 1 (bytes of JSON; default "
                         f"{MAX_PAYLOAD_BYTES:,}, 1 MiB) or None for no limit, got {value!r}.")


def check_payload(text: str, limit: int | None, what: str) -> None:
    """Raise :class:`PayloadTooLarge` if ``text`` (JSON, already encoded) is over ``limit``
    bytes of UTF-8. Callers on the hot path call it only when ``len(text) > limit // 4``
    (a character is at most 4 bytes); ASCII text is measured by its length (``isascii``
    reads a flag), so the bytes are counted only for non-ASCII text near the limit."""
    if limit is None:
        return
    size = len(text) if text.isascii() else len(text.encode())
    if size > limit:
        raise PayloadTooLarge(too_large(what, size, limit), size, limit)


def too_large(what: str, size: int, limit: int) -> str:
    return (f"{what} is {size:,} bytes as JSON, over the limit of {limit:,} bytes "
            "(max_payload_bytes; REMQ['MAX_PAYLOAD_BYTES'] under Django). Keep large content "
            "elsewhere (a file, object storage, a database row) and pass or return a "
            "reference to it, or raise the limit (None turns it off).")


def run_at_ms(options: Mapping[str, Any], now_ms: int | None = None) -> int:
    """When the task should run, in epoch ms; 0 means now."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if options.get("delay_ms"):
        return now_ms + int(options["delay_ms"])
    when = options.get("delay_until")
    if when is None:
        return 0
    if isinstance(when, datetime):
        return int(when.timestamp() * 1000)
    if isinstance(when, timedelta):
        return now_ms + int(when.total_seconds() * 1000)
    if isinstance(when, int | float) and not isinstance(when, bool):
        return int(when)
    raise InvalidOptions(
        f"'delay_until' must be a datetime, a timedelta or epoch milliseconds, got {when!r}."
    )


def retries_of(options: Mapping[str, Any]) -> int:
    """The per-task retry count: ``attempts`` and ``retry_count`` are one setting."""
    return int(options.get("retry_count", options.get("attempts", 0)) or 0)
