"""What the Queues page and a queue's Jobs page add for trends and durations: one round
trip (:func:`..core.sdk.metrics.queue_metrics`) for every queue shown, whatever the
number of jobs; the chart is drawn by :mod:`.charts`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..core.sdk.metrics import QueueMetrics, queue_metrics
from ..sdk import Sdk
from .charts import trend_svg
from .durations import queue_durations

#: The charts' span: the last three hours, a bar a minute.
CHART_MINUTES = 180


def _chart(metrics: Sequence[QueueMetrics], label: str, last_minute_ms: int) -> dict[str, Any]:
    n = CHART_MINUTES
    completed = [sum(m.completed[i] for m in metrics) for i in range(n)]
    failed = [sum(m.failed[i] for m in metrics) for i in range(n)]
    return {"svg": trend_svg(completed, failed, last_minute_ms, label), "label": label,
            "completed": f"{sum(completed):,}", "failed": f"{sum(failed):,}",
            "any_failed": any(failed), "hours": n // 60}


def for_queues(sdk: Sdk, names: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Each queue's durations (by name) and the chart of all of them summed."""
    now = int(time.time() * 1000)
    metrics = queue_metrics(sdk, names, minutes=CHART_MINUTES) if names else []
    last = metrics[0].last_minute_ms if metrics else now // 60_000 * 60_000
    return ({m.queue: queue_durations(m, now) for m in metrics},
            _chart(metrics, "All queues", last))


def for_queue(sdk: Sdk, name: str) -> dict[str, Any]:
    """One queue's chart and durations, for its Jobs page."""
    now = int(time.time() * 1000)
    [m] = queue_metrics(sdk, [name], minutes=CHART_MINUTES)
    return {**_chart([m], f"Queue “{name}”", m.last_minute_ms),
            "durations": queue_durations(m, now), "queue": name}
