"""Property tests of the gateway's wire protocol (django_remq/consumers/protocol.py),
shared by daphne's gateway and ``runworker_remq --expose``: whatever a client sends
(text, bytes, nested JSON, huge numbers, NaN, odd types) ends in a valid message or a
:class:`ClientError` with a known code, never another exception; then the same for
the field and option checks after it, down to the emit's own validation
(``TaskManager.prepare``, no I/O)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from django_remq.consumers.protocol import (
    CLIENT_OPTIONS,
    MAX_DEPTH,
    MAX_NAME_LENGTH,
    ClientError,
    check_client_delay,
    emit_fields,
    parse,
    task_id_of,
)
from django_remq.core import TaskManager
from django_remq.core.errors import InvalidOptions
from django_remq.core.store.keys import MAX_QUEUE_NAME_LENGTH

pytestmark = pytest.mark.unit

LIMIT = 64 * 1024
#: Every code a refusal of a frame's shape or options may carry.
CODES = {"invalid_json", "invalid_message", "unknown_type", "missing_event",
         "invalid_options", "too_large", "delay_too_long", "unknown_event"}
DAY_MS = 86_400_000

scalars = (st.none() | st.booleans() | st.integers() | st.integers(-10**400, 10**400)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)
option_names = st.sampled_from(sorted(CLIENT_OPTIONS | {"id", "retryCount", "retryDelayMs",
                                                        "delayUntil", "debounce", "x"}))
option_values = (st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=40)
                 | st.sampled_from(["2026-03-01T12:00:00.000Z", "2026-03-01T12:00:00",
                                    "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00"])
                 | values)
frames = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["emit", "subscribe", "unsubscribe", "x"]) | scalars,
    "event": st.sampled_from(["report", "other"]) | scalars,
    "queue": st.sampled_from(["default", "q:bad", "x" * 300]) | scalars,
    "taskId": st.text(max_size=220) | scalars,
    "data": values,
    "options": st.dictionaries(option_names, option_values, max_size=4) | values,
})


def to_text(value: Any) -> str:
    """JSON as Python writes it, NaN and Infinity included (a client may send them)."""
    return json.dumps(value, allow_nan=True)


def nested(depth: int, opener: str) -> str:
    """``depth`` arrays or objects, one inside the other, around a 1."""
    if opener == "{":
        return '{"a":' * depth + "1" + "}" * depth
    return "[" * depth + "1" + "]" * depth


def refused(exc: ClientError) -> None:
    assert exc.code in CODES, exc.code
    assert isinstance(exc.message, str)
    assert len(exc.message) < 600  # an answer never echoes a frame back
    json.dumps(exc.frame())


def check_frame(raw: str | bytes) -> dict[str, Any] | None:
    try:
        msg = parse(raw, LIMIT)
    except ClientError as exc:
        refused(exc)
        return None
    assert isinstance(msg, dict)
    assert msg["type"] in ("emit", "subscribe", "unsubscribe")
    json.dumps(msg, allow_nan=False).encode("utf-8")  # storable as it is
    return msg


@given(st.text(max_size=300) | st.binary(max_size=300))
@example("[" * 30_000)
@example(b"\xff\xfe[\x00")
@example("\ud800")
@example('"\\ud800"')
@example("1" * 5000)
@example('{"type": "emit", "data": 1e999}')
@example('{"type": "emit", "data": [NaN, -Infinity]}')
@example('{"type": "emit", "data": "' + "[" * 100 + '"}')
@example("x" * (LIMIT + 1))
def test_any_text_or_bytes_is_a_message_or_a_clear_refusal(raw: str | bytes) -> None:
    check_frame(raw)


@given(values)
def test_any_json_value_is_a_message_or_a_clear_refusal(value: Any) -> None:
    check_frame(to_text(value))
    check_frame(to_text(value).encode())


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 40_000), st.sampled_from(["[", "{"]), st.booleans())
def test_nesting_over_the_limit_is_invalid_json_and_within_it_parses(
        depth: int, opener: str, closed: bool) -> None:
    text = nested(depth, opener) if closed else opener * depth
    raw = f'{{"type": "emit", "event": "report", "data": {text}}}'
    if closed and depth + 1 <= MAX_DEPTH:  # the frame's own object is one level
        assert parse(raw, 1 << 20)["type"] == "emit"
        return
    with pytest.raises(ClientError) as refusal:
        parse(raw, 1 << 20)
    assert refusal.value.code == "invalid_json"


def manager() -> TaskManager:
    """A TaskManager for ``prepare`` only: nothing here opens a connection."""
    tm = TaskManager.init(db="redis://127.0.0.1:1/0")
    tm.register_handler("report", lambda task, ctx: None)
    return tm


TM = manager()


def gateway_emit(msg: dict[str, Any]) -> None:
    """What the gateway checks of an emit before any I/O, in its order and with its
    mapping of the emit's own errors (consumers/gateway.py)."""
    event, queue, data, options = emit_fields(msg, CLIENT_OPTIONS)
    check_client_delay(options, DAY_MS)
    if not TM.registry.queues_of(event) or queue not in (None, "default"):
        raise ClientError("unknown_event", f"there is no task {event!r}")
    try:
        TM.prepare(event, queue, data, options)
    except (InvalidOptions, TypeError, ValueError) as exc:
        raise ClientError(getattr(exc, "code", "invalid_options"), str(exc)) from None


@settings(max_examples=300)
@given(frames)
@example({"event": "report", "options": {"delay_ms": 10**30}})
@example({"event": "report", "options": {"delayUntil": 1e300}})
@example({"event": "report", "options": {"delayUntil": "9999-12-31T23:59:59Z"}})
@example({"event": "report", "options": {"delay_until": 10**4000}})
@example({"event": "report", "data": 10**4000})
@example({"type": "subscribe", "taskId": "t" * 201})
@example({"event": "report", "options": {"attempts": [[10**450, 10**140]]}})  # quoted whole
@example({"event": "report", "queue": "q" * (MAX_QUEUE_NAME_LENGTH + 1)})
def test_any_frame_ends_in_a_valid_request_or_a_clear_refusal(frame: dict[str, Any]) -> None:
    msg = check_frame(to_text(frame))
    if msg is None:
        return
    try:
        if msg["type"] == "emit":
            gateway_emit(msg)
        else:
            task_id = task_id_of(msg)
            assert 0 < len(task_id) <= MAX_NAME_LENGTH
    except ClientError as exc:
        refused(exc)


@given(st.sampled_from(["delay_ms", "retry_delay_ms", "delay_until"]),
       st.integers(0, 10**15) | st.floats(0, 1e18))
def test_a_client_delay_past_the_cap_is_refused_and_within_it_passes(
        key: str, amount: float) -> None:
    assume(math.isfinite(amount))
    now = int(time.time() * 1000)
    value = now + amount if key == "delay_until" else amount
    options = {key: value}
    if (value - now if key == "delay_until" else value) <= DAY_MS:
        check_client_delay(options, DAY_MS, now)
        return
    with pytest.raises(ClientError) as refusal:
        check_client_delay(options, DAY_MS, now)
    assert refusal.value.code == "delay_too_long"
    assert "max_client_delay_ms" in refusal.value.message
