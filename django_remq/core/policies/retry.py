"""Pure policy functions: whether and when a failed task runs again.

No Redis here; unit-tested directly. The Processor applies the decision with one
atomic script (finish.lua).

The original remq's two-level combo: a task asks for retries (``attempts``/``retry_count``
on emit or on the handler, emit winning); the processor allows them
(``retry.max_retries > 0``, and it also caps them: a task gets
``min(task retries, max_retries)`` retries); ``should_retry(error, attempt)`` may
refuse one. ``DEFAULT_MAX_RETRIES`` is 10 rather than 0 so that ``attempts=3`` works
without any processor setting (the task asked; nothing forbade it), while
``max_retries=0`` still switches retries off everywhere.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InvalidOptions

log = logging.getLogger("django_remq.policies")

DEFAULT_MAX_RETRIES = 10

#: Why a failed attempt is final (also the DLQ entry's ``reason``).
FailReason = Literal["no_retries", "retries_exhausted", "retry_refused"]


@dataclass(frozen=True)
class RetryDecision:
    """``delay_ms`` before the next run, or ``None`` and the ``reason`` it is final."""

    delay_ms: int | None
    reason: FailReason | None = None


@dataclass(frozen=True)
class RetryBackoff:
    """Delay before retry number ``attempt`` (1-based): fixed, or exponential with a cap.

    ``kind="exponential"``: ``base_ms * factor ** (attempt - 1)``, capped at ``max_ms``,
    then +/- ``jitter`` (a fraction) so retries of many tasks do not stampede.
    """

    kind: str = "fixed"
    factor: float = 2.0
    max_ms: int = 3_600_000
    jitter: float = 0.0

    def delay_ms(self, base_ms: int, attempt: int, rand: Callable[[], float] = random.random
                 ) -> int:
        delay = float(base_ms)
        if self.kind == "exponential":
            try:
                delay = base_ms * self.factor ** max(attempt - 1, 0)
            except OverflowError:
                delay = float(self.max_ms)
            delay = min(float(self.max_ms), delay)
        if self.jitter:
            delay *= 1 + self.jitter * (2 * rand() - 1)
            if self.kind == "exponential":
                delay = min(float(self.max_ms), delay)
        return max(int(delay), 0)

    def check(self) -> None:
        if not (self.factor >= 1 and self.max_ms >= 0 and 0 <= self.jitter <= 1):
            raise InvalidOptions(f"retry 'backoff': need factor >= 1, max_ms >= 0 and "
                                 f"0 <= jitter <= 1; got {self!r}")

    @classmethod
    def parse(cls, value: Any) -> RetryBackoff:
        if value is None or value == "fixed":
            return cls()
        if value == "exponential":
            return cls(kind="exponential", jitter=0.1)
        if isinstance(value, RetryBackoff):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {"kind", "factor", "max_ms", "jitter"}
            if unknown or value.get("kind", "fixed") not in ("fixed", "exponential"):
                raise InvalidOptions(
                    "retry 'backoff' takes 'fixed', 'exponential' or a dict with kind "
                    f"('fixed'|'exponential'), factor, max_ms, jitter; got {dict(value)!r}")
            backoff = cls(**value)
            backoff.check()
            return backoff
        raise InvalidOptions(
            f"retry 'backoff' must be 'fixed', 'exponential' or a dict, got {value!r}")


@dataclass(frozen=True)
class RetryPolicy:
    """The original remq's two-level combo: the task asks for retries, the processor allows them."""

    max_retries: int = DEFAULT_MAX_RETRIES
    retry_delay_ms: int = 0
    should_retry: Callable[[BaseException, int], bool] | None = None
    backoff: RetryBackoff = RetryBackoff()

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> RetryPolicy:
        config = dict(config or {})
        unknown = set(config) - {"max_retries", "retry_delay_ms", "should_retry", "backoff"}
        if unknown:
            raise InvalidOptions(
                f"processor 'retry' has unknown keys {sorted(unknown)}; allowed: max_retries, "
                "retry_delay_ms, should_retry, backoff")
        for key in ("max_retries", "retry_delay_ms"):
            value = config.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 0):
                raise InvalidOptions(f"processor 'retry': {key!r} must be an int >= 0, "
                                     f"got {value!r}")
        should_retry = config.get("should_retry")
        if should_retry is not None and not callable(should_retry):
            raise InvalidOptions("processor 'retry': 'should_retry' must be a function "
                                 f"(error, attempt) -> bool, got {should_retry!r}")
        return cls(max_retries=int(config.get("max_retries", DEFAULT_MAX_RETRIES)),
                   retry_delay_ms=int(config.get("retry_delay_ms", 0)),
                   should_retry=should_retry,
                   backoff=RetryBackoff.parse(config.get("backoff")))

    def decide(self, exc: BaseException, retries_left: int, retried: int,
               task_delay_ms: int | None) -> RetryDecision:
        """Whether the attempt that just failed runs again, and when.

        ``retries_left``: the task's remaining retries; ``retried``: retries done so
        far, so the failed attempt is number ``retried + 1`` -- the ``attempt`` that
        ``should_retry`` receives. A ``should_retry`` that raises refuses the retry
        (a buggy filter must not cause a retry storm); the error is logged.
        """
        if retries_left <= 0 or self.max_retries <= 0:
            return RetryDecision(None, "retries_exhausted" if retried else "no_retries")
        if retried >= self.max_retries:
            return RetryDecision(None, "retries_exhausted")
        attempt = retried + 1
        if self.should_retry is not None:
            try:
                allowed = bool(self.should_retry(exc, attempt))
            except Exception:
                log.exception("retry 'should_retry' raised; not retrying")
                allowed = False
            if not allowed:
                return RetryDecision(None, "retry_refused")
        base = task_delay_ms if task_delay_ms is not None else self.retry_delay_ms
        return RetryDecision(self.backoff.delay_ms(base, attempt))

    def next_delay_ms(self, exc: BaseException, retries_left: int, retried: int,
                      task_delay_ms: int | None) -> int | None:
        """Delay before the next run, or ``None`` when the task must fail now."""
        return self.decide(exc, retries_left, retried, task_delay_ms).delay_ms
