"""Every ``@handler`` option is checked where it is written, at import (so by ``manage.py
check`` too), by the very rules a worker runs at start: a bad ``debounce`` or cron
pattern no longer waits for the worker to fail."""

from __future__ import annotations

from typing import Any

import pytest

from django_remq import handler
from django_remq.core.handlers import HandlerRegistry
from django_remq.decorators import registry
from django_remq.errors import InvalidHandlerOptions, InvalidOptions

pytestmark = pytest.mark.unit

EVENT = "first-hour.report"
WHERE = f"@handler({EVENT!r}) on tests.test_first_hour_handlers.report:"


def report(task: Any, ctx: Any) -> None: ...


def declared() -> set[tuple[str, str]]:
    return {(d.queue, d.event) for d in registry}


def refused(**options: Any) -> str:
    with pytest.raises(InvalidHandlerOptions) as exc:
        handler(EVENT, queue="first-hour", **options)(report)
    assert ("first-hour", EVENT) not in declared()
    assert isinstance(exc.value, InvalidOptions)
    return str(exc.value)


def test_a_negative_debounce_fails_at_decoration_naming_the_fix() -> None:
    text = refused(debounce=-1)
    assert text.startswith(f"{WHERE} 'debounce' must be a positive whole number of "
                           "milliseconds")
    assert "e.g. debounce=5000, or a dict with key, max_wait_ms, mode, window_ms" in text
    assert text.endswith("got -1")


def test_a_bad_cron_pattern_fails_at_decoration_with_the_reason_and_an_example() -> None:
    text = refused(repeat={"pattern": "every minute"})
    assert text.startswith(f"{WHERE} 'repeat': pattern 'every minute' has 2 fields; use 5")
    assert "6 with seconds first" in text
    assert "{'pattern': '* * * * *'} (every minute)" in text
    text = refused(repeat={"pattern": "61 * * * *"})
    assert text.startswith(f"{WHERE} 'repeat': invalid cron pattern '61 * * * *': ")
    assert "out of range" in text  # croniter's reason
    assert "{'pattern': '*/30 * * * * *'} (every 30 seconds: seconds first)" in text
    try:  # both forms the example names are accepted
        for pattern in ("* * * * *", "*/30 * * * * *"):
            handler(EVENT, queue="first-hour", repeat={"pattern": pattern})(report)
            assert ("first-hour", EVENT) in declared()
    finally:
        registry.remove("first-hour", EVENT)


BAD = [
    ({"debounce": 0}, "'debounce' must be a positive whole number"),
    ({"debounce": "500"}, "'debounce' must be a positive whole number"),
    ({"debounce": {"window_ms": -5}}, "'debounce': 'window_ms' must be a positive int"),
    ({"debounce": {"window_ms": 5, "mode": "both"}}, "'mode' must be 'leading' or 'trailing'"),
    ({"debounce": {"window_ms": 5, "max_wait_ms": 9}}, "only applies to mode='trailing'"),
    ({"debounce": {"window_ms": 5, "key": "user"}}, "'key' must be a function"),
    ({"repeat": "* * * * *"}, "'repeat' must be a dict with 'pattern'"),
    ({"repeat": {"every_ms": 0}}, "'every_ms' must be a positive int"),
    ({"repeat": {"every_ms": 5, "limit": -1}}, "'limit' must be a positive int"),
    ({"repeat": {"pattern": "* * * * *", "every_ms": 5}}, "exactly one of"),
    ({"attempts": -1}, "'attempts' must be >= 0"),
    ({"retry_count": "3"}, "'retry_count' must be an int"),
    ({"retry_delay_ms": -5}, "'retry_delay_ms' must be >= 0"),
    ({"priority": 500}, "'priority' must be an int in -100..100"),
    ({"timeout_ms": 0}, "'timeout_ms' must be >= 1 ms"),
    ({"delay_ms": 10}, "'delay_ms' is chosen per emit"),
    ({"retires": 3}, "unknown option 'retires'"),
]


@pytest.mark.parametrize(("options", "text"), BAD)
def test_every_option_is_checked_at_decoration_by_the_workers_rules(
        options: dict[str, Any], text: str) -> None:
    message = refused(**options)
    assert message.startswith(WHERE)
    assert text in message
    with pytest.raises(InvalidOptions) as engine:  # what a worker's register_handler says
        HandlerRegistry().register(EVENT, report, "first-hour", options)  # type: ignore[arg-type]
    assert str(engine.value) == message.replace(WHERE[:-1], f"register_handler({EVENT!r})")
