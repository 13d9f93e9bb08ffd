"""Pure policy functions and option validation: no Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from django_remq.core.errors import InvalidOptions
from django_remq.core.options import validate_emit_options, validate_handler_options
from django_remq.core.policies.cron import CronSpec
from django_remq.core.policies.debounce import DebounceSpec
from django_remq.core.policies.dlq import DeadLetterConfig
from django_remq.core.policies.retry import RetryBackoff, RetryPolicy
from django_remq.core.settings import ProcessorSettings

pytestmark = pytest.mark.unit

ERR = ValueError("boom")


def ms(*args: int, tz: ZoneInfo | None = None) -> int:
    return int(datetime(*args, tzinfo=tz or UTC).timestamp() * 1000)  # type: ignore[misc]


# -- retry combo -------------------------------------------------------------------

def test_max_retries_zero_switches_retries_off():
    d = RetryPolicy(max_retries=0).decide(ERR, retries_left=3, retried=0, task_delay_ms=None)
    assert d.delay_ms is None
    assert d.reason == "no_retries"


def test_task_without_retries_is_not_retried():
    d = RetryPolicy(max_retries=5).decide(ERR, retries_left=0, retried=0, task_delay_ms=None)
    assert (d.delay_ms, d.reason) == (None, "no_retries")


def test_task_retries_until_its_count_is_spent():
    policy = RetryPolicy(max_retries=5, retry_delay_ms=100)
    delays = [policy.next_delay_ms(ERR, 3 - n, n, None) for n in range(4)]
    assert delays == [100, 100, 100, None]
    assert policy.decide(ERR, 0, 3, None).reason == "retries_exhausted"


def test_max_retries_caps_the_task_count():
    policy = RetryPolicy(max_retries=2)
    assert [policy.next_delay_ms(ERR, 10 - n, n, None) for n in range(3)] == [0, 0, None]


def test_per_task_delay_overrides_processor_delay():
    assert RetryPolicy(retry_delay_ms=1000).next_delay_ms(ERR, 1, 0, 250) == 250
    assert RetryPolicy(retry_delay_ms=1000).next_delay_ms(ERR, 1, 0, None) == 1000


def test_should_retry_gets_error_and_attempt_and_can_refuse():
    seen = []

    def should_retry(err: BaseException, attempt: int) -> bool:
        seen.append((err, attempt))
        return "validation" not in str(err)

    policy = RetryPolicy(should_retry=should_retry)
    assert policy.decide(ValueError("validation failed"), 3, 0, None).reason == "retry_refused"
    assert policy.decide(OSError("network"), 3, 1, None).delay_ms == 0
    assert [a for _, a in seen] == [1, 2]


def test_should_retry_that_raises_refuses():
    def broken(err: BaseException, attempt: int) -> bool:
        raise RuntimeError("bug")

    assert RetryPolicy(should_retry=broken).decide(ERR, 3, 0, None).reason == "retry_refused"


def test_retry_config_validation():
    with pytest.raises(InvalidOptions, match="unknown keys"):
        RetryPolicy.from_config({"maxRetries": 3})
    with pytest.raises(InvalidOptions, match="max_retries"):
        RetryPolicy.from_config({"max_retries": -1})
    with pytest.raises(InvalidOptions, match="should_retry"):
        RetryPolicy.from_config({"should_retry": True})
    assert RetryPolicy.from_config(None).max_retries == 10


# -- backoff -----------------------------------------------------------------------

def test_fixed_backoff():
    assert [RetryBackoff().delay_ms(500, n) for n in range(1, 5)] == [500] * 4


def test_exponential_backoff_sequence_and_cap():
    b = RetryBackoff(kind="exponential", factor=2, max_ms=5000)
    assert [b.delay_ms(500, n) for n in range(1, 7)] == [500, 1000, 2000, 4000, 5000, 5000]
    assert b.delay_ms(500, 10_000) == 5000  # no overflow


def test_jitter_stays_within_bounds():
    b = RetryBackoff(kind="exponential", factor=2, max_ms=10_000, jitter=0.5)
    assert b.delay_ms(1000, 1, rand=lambda: 0.0) == 500
    assert b.delay_ms(1000, 1, rand=lambda: 1.0) == 1500
    assert b.delay_ms(1000, 9, rand=lambda: 1.0) == 10_000  # cap holds after jitter


def test_backoff_parse():
    assert RetryBackoff.parse("exponential").kind == "exponential"
    assert RetryBackoff.parse({"kind": "exponential", "factor": 3}).factor == 3
    with pytest.raises(InvalidOptions):
        RetryBackoff.parse({"kind": "linear"})
    with pytest.raises(InvalidOptions):
        RetryBackoff.parse({"kind": "exponential", "factor": 0.5})


# -- common mistakes (the original remq's list) ----------------------------------------------

def test_attempts_and_retry_count_together():
    with pytest.raises(InvalidOptions, match="use one"):
        validate_emit_options("e", {"attempts": 3, "retry_count": 3})
    with pytest.raises(InvalidOptions, match="use one"):
        validate_handler_options("e", {"attempts": 3, "retry_count": 3})


def test_should_retry_in_emit_options_names_the_processor_level():
    with pytest.raises(InvalidOptions, match=r"processor setting.*'retry'"):
        validate_emit_options("e", {"should_retry": lambda e, a: True})
    with pytest.raises(InvalidOptions, match=r"processor=\{'dlq'"):
        validate_emit_options("e", {"should_send_to_dlq": lambda m, e, a: True})


def test_debounce_in_emit_options_names_the_handler_level():
    with pytest.raises(InvalidOptions, match="belongs to the handler"):
        validate_emit_options("e", {"debounce": 100})
    with pytest.raises(InvalidOptions, match="belongs to the handler"):
        validate_emit_options("e", {"repeat": {"pattern": "* * * * *"}})


# -- DLQ config ----------------------------------------------------------------------

def test_dlq_config():
    assert DeadLetterConfig.from_config(None) is None
    cfg = DeadLetterConfig.from_config({})
    assert cfg is not None
    assert cfg.maxlen == 10_000
    assert cfg.stream_key == "dlq"
    with pytest.raises(InvalidOptions, match="unknown keys"):
        DeadLetterConfig.from_config({"streamKey": "x"})
    with pytest.raises(InvalidOptions, match="maxlen"):
        DeadLetterConfig.from_config({"maxlen": 0})
    settings = ProcessorSettings.from_options({"dlq": {"stream_key": "remq-dlq"}})
    assert settings.dlq is not None
    assert settings.dlq.stream_key == "remq-dlq"
    for key in ("remq:dlq", "{q}dlq", "stream", "two words", ""):  # a full key, a taken name
        with pytest.raises(InvalidOptions, match=r"each queue's dead-letter stream"):
            DeadLetterConfig.from_config({"stream_key": key})


# -- debounce config -------------------------------------------------------------------

def test_debounce_spec():
    assert DebounceSpec.parse("e", None) is None
    assert DebounceSpec.parse("e", 500) == DebounceSpec(500, "leading")
    spec = DebounceSpec.parse("e", {"window_ms": 500, "mode": "trailing", "max_wait_ms": 2000})
    assert spec is not None
    assert spec.mode == "trailing"
    assert spec.max_wait_ms == 2000
    for bad in (0, "500", {"window_ms": 5, "mode": "both"}, {"window": 5},
                {"window_ms": 5, "max_wait_ms": 10}, {"window_ms": 5, "key": "k"}):
        with pytest.raises(InvalidOptions, match="debounce"):
            DebounceSpec.parse("e", bad)


# -- cron ---------------------------------------------------------------------------------

def test_six_field_pattern_reads_seconds_first():
    spec = CronSpec.parse("e", {"pattern": "*/30 * * * * *"})
    assert spec is not None
    start = ms(2024, 1, 1, 0, 0, 7)
    assert spec.ticks_after(start, ZoneInfo("UTC"), 3) == [
        ms(2024, 1, 1, 0, 0, 30), ms(2024, 1, 1, 0, 1, 0), ms(2024, 1, 1, 0, 1, 30)]


def test_five_field_pattern_and_timezone():
    spec = CronSpec.parse("e", {"pattern": "0 9 * * *"})
    assert spec is not None
    paris = ZoneInfo("Europe/Paris")
    assert spec.ticks_after(ms(2024, 6, 1), paris, 1) == [ms(2024, 6, 1, 9, 0, 0, tz=paris)]
    assert spec.ticks_after(ms(2024, 6, 1), ZoneInfo("UTC"), 1) == [ms(2024, 6, 1, 9)]


def test_every_ms_is_epoch_aligned():
    spec = CronSpec.parse("e", {"every_ms": 1000})
    assert spec is not None
    assert spec.ticks_after(10_500, ZoneInfo("UTC"), 2) == [11_000, 12_000]


@pytest.mark.parametrize(("pattern", "reason"), [
    ("61 * * * *", "out of range"), ("* * * *", "4 fields"), ("* * * * * * *", "7 fields"),
    ("*/0 * * * * *", "invalid cron pattern"), (30, "must be a string"),
])
def test_invalid_patterns_are_rejected_with_pattern_and_reason(pattern, reason):
    with pytest.raises(InvalidOptions, match=reason) as info:
        CronSpec.parse("e", {"pattern": pattern})
    assert "register_handler('e')" in str(info.value)


def test_repeat_needs_pattern_or_every():
    with pytest.raises(InvalidOptions, match="exactly one"):
        CronSpec.parse("e", {})
    with pytest.raises(InvalidOptions, match="must be a dict"):
        CronSpec.parse("e", {"cron": "* * * * *"})


def test_processor_timezone_is_validated():
    with pytest.raises(InvalidOptions, match="Mars/Olympus"):
        ProcessorSettings.from_options({"timezone": "Mars/Olympus"})
