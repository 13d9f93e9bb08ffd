"""The original remq's emit options over the wire, translated to ours in one place
(:func:`django_remq.consumers.protocol.client_options`), and the setting that says which
a client may set."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from django_remq.conf import problems
from django_remq.consumers.policy import GatewayPolicy
from django_remq.consumers.protocol import CLIENT_OPTIONS, ClientError, client_options, emit_fields

pytestmark = pytest.mark.unit


def refused(options: dict[str, Any], allowed: frozenset[str] = CLIENT_OPTIONS) -> ClientError:
    with pytest.raises(ClientError) as caught:
        client_options(options, allowed)
    assert caught.value.code == "invalid_options"
    return caught.value


def test_camelcase_options_become_the_python_api_spelling() -> None:
    sent = {"retryCount": 2, "retryDelayMs": 250, "delayUntil": 1_900_000_000_000,
            "priority": 5, "timeout_ms": 1000}
    assert client_options(sent) == {"retry_count": 2, "retry_delay_ms": 250,
                                    "delay_until": 1_900_000_000_000, "priority": 5,
                                    "timeout_ms": 1000}
    assert client_options({"attempts": 3, "retry_delay_ms": 10}) == {"attempts": 3,
                                                                     "retry_delay_ms": 10}


@pytest.mark.parametrize(("text", "ms"), [
    ("2030-03-01T12:00:00.000Z", 1_898_596_800_000),  # JSON.stringify(new Date(...))
    ("2030-03-01T12:00:00.123Z", 1_898_596_800_123),  # exact: no float rounding
    ("2030-03-01T13:00:00+01:00", 1_898_596_800_000),
])
def test_delay_until_as_an_iso_date_becomes_epoch_ms(text: str, ms: int) -> None:
    assert datetime(2030, 3, 1, 12, tzinfo=UTC).timestamp() == 1_898_596_800
    assert client_options({"delayUntil": text}) == {"delay_until": ms}
    assert client_options({"delay_until": text}) == {"delay_until": ms}


def test_a_date_without_a_time_zone_or_not_a_date_is_refused_with_the_fix() -> None:
    naive = refused({"delayUntil": "2030-03-01T12:00:00"})
    assert "'delayUntil'" in naive.message
    assert "time zone" in naive.message
    garbage = refused({"delayUntil": "next tuesday"})
    assert "ISO-8601" in garbage.message
    assert "epoch milliseconds" in garbage.message


@pytest.mark.parametrize(("ours", "theirs"), [("retry_count", "retryCount"),
                                              ("retry_delay_ms", "retryDelayMs"),
                                              ("delay_until", "delayUntil")])
def test_both_spellings_of_one_option_are_refused_naming_both(ours: str, theirs: str) -> None:
    for options in ({ours: 1, theirs: 1}, {theirs: 1, ours: 1}):
        error = refused(options)
        assert f"{theirs!r} and {ours!r} are the same option" in error.message


def test_the_client_whitelist_applies_after_translation() -> None:
    error = refused({"retryCount": 1, "id": "mine"})
    assert "['id'] cannot be set by a client" in error.message
    assert "GATEWAY['client_options']" in error.message
    # a project that lists fewer options refuses the original's spelling of one it left out
    assert "['retryDelayMs']" in refused({"retryDelayMs": 5}, frozenset({"priority"})).message
    assert "['retryBackoff']" in refused({"retryBackoff": "exponential"}).message
    allowed = CLIENT_OPTIONS | {"id"}
    assert client_options({"id": "order-42", "retryCount": 1}, allowed) == {
        "id": "order-42", "retry_count": 1}
    frame = {"event": "report", "options": {"id": "order-42", "retryCount": 1}}
    assert emit_fields(frame, allowed)[3] == {"id": "order-42", "retry_count": 1}


def test_gateway_client_options_setting() -> None:
    assert GatewayPolicy.from_settings({}).client_options == CLIENT_OPTIONS
    listed = GatewayPolicy.from_settings({"client_options": [*CLIENT_OPTIONS, "id"]})
    assert listed.client_options == CLIENT_OPTIONS | {"id"}
    assert problems({"GATEWAY": {"client_options": ["id", "priority"]}}) == []
    for bad in ("id", ["retryCount"], ["debounce"], [{"id": 1}]):
        [found] = problems({"GATEWAY": {"client_options": bad}})
        assert found.id == "remq.E021"
        assert "'client_options'] must be a list of emit options" in found.msg
        assert "delay_until" in (found.hint or "")
