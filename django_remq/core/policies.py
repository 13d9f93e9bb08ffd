"""Pure policy functions: whether and when a failed task runs again.

No Redis here; unit-tested directly. The Processor applies the decision with one
atomic script (finish.lua).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidOptions

DEFAULT_MAX_RETRIES = 10


@dataclass(frozen=True)
class Backoff:
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
        if self.kind == "fixed":
            delay = float(base_ms)
        else:
            delay = min(float(self.max_ms), base_ms * self.factor ** max(attempt - 1, 0))
        if self.jitter:
            delay *= 1 + self.jitter * (2 * rand() - 1)
        return max(int(delay), 0)

    @classmethod
    def parse(cls, value: Any) -> Backoff:
        if value is None or value == "fixed":
            return cls()
        if value == "exponential":
            return cls(kind="exponential", jitter=0.1)
        if isinstance(value, Backoff):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {"kind", "factor", "max_ms", "jitter"}
            if unknown or value.get("kind", "fixed") not in ("fixed", "exponential"):
                raise InvalidOptions(
                    "retry 'backoff' takes 'fixed', 'exponential' or a dict with kind "
                    f"('fixed'|'exponential'), factor, max_ms, jitter; got {dict(value)!r}")
            return cls(**value)
        raise InvalidOptions(
            f"retry 'backoff' must be 'fixed', 'exponential' or a dict, got {value!r}")


@dataclass(frozen=True)
class RetryPolicy:
    """The seed's two-level combo: the task asks for retries, the processor allows them."""

    max_retries: int = DEFAULT_MAX_RETRIES
    retry_delay_ms: int = 0
    should_retry: Callable[[BaseException, int], bool] | None = None
    backoff: Backoff = Backoff()

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> RetryPolicy:
        config = dict(config or {})
        unknown = set(config) - {"max_retries", "retry_delay_ms", "should_retry", "backoff"}
        if unknown:
            raise InvalidOptions(
                f"processor 'retry' has unknown keys {sorted(unknown)}; allowed: max_retries, "
                "retry_delay_ms, should_retry, backoff")
        return cls(max_retries=int(config.get("max_retries", DEFAULT_MAX_RETRIES)),
                   retry_delay_ms=int(config.get("retry_delay_ms", 0)),
                   should_retry=config.get("should_retry"),
                   backoff=Backoff.parse(config.get("backoff")))

    def next_delay_ms(self, exc: BaseException, retries_left: int, retried: int,
                      task_delay_ms: int | None) -> int | None:
        """Delay before the next run, or ``None`` when the task must fail now.

        ``retries_left``: the task's remaining retries; ``retried``: retries done so far.
        """
        if retries_left <= 0 or self.max_retries <= 0 or retried >= self.max_retries:
            return None
        attempt = retried + 1
        if self.should_retry is not None and not self.should_retry(exc, attempt):
            return None
        base = task_delay_ms if task_delay_ms is not None else self.retry_delay_ms
        return self.backoff.delay_ms(base, attempt)
