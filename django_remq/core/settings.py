"""Processor settings: the validated form of the ``processor={...}`` options.

Settings types live here, beside nothing that runs, so the Django layer's settings
checks (``conf.py``) import them without importing the worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidOptions
from .policies.cron import timezone
from .policies.dlq import DeadLetterConfig
from .policies.retry import RetryPolicy
from .store.calls import Retention
from .types import ProcessorOptions

PROCESSOR_KEYS = frozenset(ProcessorOptions.__annotations__)


@dataclass(frozen=True)
class ProcessorSettings:
    """Validated processor options (the original remq's ``processor: {...}``)."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_logs_per_task: int = 100
    claim_idle_ms: int = 30_000
    max_deliveries: int = 5
    retention: Retention = field(default_factory=Retention)
    shutdown_timeout_ms: int = 30_000
    #: a job waiting this long at the head of a lower priority lane goes ahead (lanes.py)
    priority_aging_ms: int = 30_000
    dlq: DeadLetterConfig | None = None
    timezone: str = "UTC"  # for cron patterns; the Django layer passes TIME_ZONE
    #: the loop and the sync handlers' threads on one CPU core (worker/shared_core.py)
    pin_threads: bool = True
    #: a finished job's acknowledgement waits up to this long for others to share its
    #: finish.lua call (worker/acker.py); 0: each batch goes at once
    ack_linger_ms: int = 2

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> ProcessorSettings:
        options = dict(options or {})
        unknown = set(options) - PROCESSOR_KEYS
        if unknown:
            raise InvalidOptions(f"processor options: unknown keys {sorted(unknown)}; allowed: "
                                 f"{', '.join(sorted(PROCESSOR_KEYS))}")
        ints = {k: options[k] for k in ("max_logs_per_task", "claim_idle_ms", "max_deliveries",
                                        "shutdown_timeout_ms", "priority_aging_ms")
                if k in options}
        for key, value in ints.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidOptions(f"processor option {key!r} must be an int >= 1, got {value!r}")
        retention = options.get("retention") or {}
        unknown = set(retention) - set(Retention.__dataclass_fields__)
        if unknown:
            raise InvalidOptions(f"processor 'retention': unknown keys {sorted(unknown)}; allowed: "
                                 f"{', '.join(Retention.__dataclass_fields__)}")
        tz = options.get("timezone", "UTC")
        timezone(tz)
        pin = options.get("pin_threads", True)
        if not isinstance(pin, bool):
            raise InvalidOptions(f"processor option 'pin_threads' must be True or False, got "
                                 f"{pin!r}")
        linger = options.get("ack_linger_ms", cls.ack_linger_ms)
        if not isinstance(linger, int) or isinstance(linger, bool) or not 0 <= linger <= 1000:
            raise InvalidOptions(f"processor option 'ack_linger_ms' must be an int in 0..1000 "
                                 f"(milliseconds; 0: acknowledge at once), got {linger!r}")
        return cls(retry=RetryPolicy.from_config(options.get("retry")),
                   retention=Retention(**retention),
                   dlq=DeadLetterConfig.from_config(options.get("dlq")), timezone=tz,
                   pin_threads=pin, ack_linger_ms=linger, **ints)


__all__ = ["PROCESSOR_KEYS", "ProcessorSettings"]
