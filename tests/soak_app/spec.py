"""What the soak's handlers are declared with, shared by the worker (``tasks.py``) and the
test's emitting TaskManager: trailing debounce is applied by the emitter, so both must
agree, and importing this module declares nothing."""

from __future__ import annotations

from typing import Any

QUEUE = "soak"
#: runs per job id (HINCRBY by each handler as it starts), under the test's key prefix
RUNS = "soak:runs"
#: job id -> 1 once a cancelled long handler saw its cancellation
SAW_CANCEL = "soak:saw-cancel"

RETRIES = 2  # flaky and doomed handlers: 3 runs in all
FLAKY_RUNS = RETRIES + 1
TIMEOUT_MS = 150
LEAD_WINDOW_MS = 60_000  # longer than the soak: one run per burst, the rest cancelled
TRAIL_WINDOW_MS = 500


def _burst(message: Any) -> Any:
    return message.data["burst"]


#: event -> its @handler options
OPTIONS: dict[str, dict[str, Any]] = {
    "soak.report_async": {}, "soak.chain_async": {}, "soak.report_sync": {},
    "soak.child_async": {}, "soak.child_sync": {},
    "soak.plain_async": {}, "soak.plain_sync": {},
    "soak.flaky_async": {"attempts": RETRIES, "retry_delay_ms": 20},
    "soak.flaky_sync": {"attempts": RETRIES, "retry_delay_ms": 20},
    "soak.doomed_async": {"attempts": RETRIES, "retry_delay_ms": 20},
    "soak.doomed_sync": {"attempts": RETRIES, "retry_delay_ms": 20},
    "soak.slow_async": {"timeout_ms": TIMEOUT_MS, "attempts": 1, "retry_delay_ms": 20},
    "soak.slow_sync": {"timeout_ms": TIMEOUT_MS},
    "soak.long_async": {}, "soak.long_sync": {},
    "soak.never": {}, "soak.delayed": {}, "soak.whoami": {},
    "soak.lead": {"debounce": {"window_ms": LEAD_WINDOW_MS, "key": _burst}},
    "soak.trail": {"debounce": {"window_ms": TRAIL_WINDOW_MS, "mode": "trailing",
                                "key": _burst}},
}
