"""Durations, trends and totals of queues, from the counters finish.lua keeps.

finish.lua counts every outcome it applies, in the same atomic step: in the queue's
``totals`` hash (monotonic: what Prometheus counters need) and in one ``trend:<hour>``
hash per hour, per minute (expiring, so bounded: at most :data:`TREND_HOURS` + 1 hashes
per queue). Reading a queue's last N minutes costs ``N / 60 + 2`` HGETALLs and one
ZRANGE, all in one round trip for every queue asked (:func:`queue_metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptions
from ..store.records import as_text
from ..store.scripts import Cmd
from .base import now_ms
from .plan import Plan

if TYPE_CHECKING:
    from .client import Sdk

#: Upper bounds (ms) of the run-time histogram's buckets; finish.lua's BOUNDS (same order);
#: a last bucket holds longer runs.
RUN_BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
                 300000, 900000, 3600000)
#: How long finish.lua keeps the per-minute counters after their hour (its TREND_HOURS).
TREND_HOURS = 24
MINUTE, HOUR = 60_000, 3_600_000
#: Outcomes finish.lua counts ("retried": a run that failed and goes again).
OUTCOMES = ("completed", "failed", "cancelled", "retried")


@dataclass(frozen=True)
class RunTimes:
    """Run times (started -> finished) of a set of runs, as histogram buckets."""

    buckets: tuple[int, ...] = (0,) * (len(RUN_BOUNDS_MS) + 1)  # per bound, then longer
    total_ms: int = 0

    @property
    def runs(self) -> int:
        return sum(self.buckets)

    @property
    def average_ms(self) -> float | None:
        return self.total_ms / self.runs if self.runs else None

    def quantile_ms(self, q: float) -> float | None:
        """The ``q`` quantile, interpolated inside its bucket as Prometheus's
        ``histogram_quantile`` does; the last bucket answers its lower bound."""
        if not self.runs:
            return None
        rank, seen = q * self.runs, 0
        for i, n in enumerate(self.buckets):
            if n and seen + n >= rank:
                if i == len(RUN_BOUNDS_MS):
                    return float(RUN_BOUNDS_MS[-1])
                low = RUN_BOUNDS_MS[i - 1] if i else 0
                return low + (RUN_BOUNDS_MS[i] - low) * (rank - seen) / n
            seen += n
        return float(RUN_BOUNDS_MS[-1])


@dataclass(frozen=True)
class QueueTotals:
    """Since the queue began: jobs finished per outcome and every run's time."""

    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    retried: int = 0
    run_times: RunTimes = field(default_factory=RunTimes)


@dataclass(frozen=True)
class QueueMetrics:
    """One queue's durations and trend. ``completed`` / ``failed``: per minute, oldest
    first, the last being the current minute, which began at ``last_minute_ms``;
    ``last_hour``: run times of the runs that ended in the last 60 minutes;
    ``oldest_waiting_ms``: when the longest-waiting job began waiting (``None``: none)."""

    queue: str
    last_minute_ms: int
    completed: list[int]
    failed: list[int]
    last_hour: RunTimes
    oldest_waiting_ms: int | None
    totals: QueueTotals | None = None

    def oldest_wait_ms(self, now: int) -> int | None:
        return None if self.oldest_waiting_ms is None else max(0, now - self.oldest_waiting_ms)


def _ints(flat: Any) -> dict[str, int]:
    """An HGETALL reply (a dict, or flat) of counters; a value that is no integer is left
    out."""
    pairs = flat.items() if isinstance(flat, dict) else zip(flat[::2], flat[1::2], strict=False)
    out: dict[str, int] = {}
    for name, value in pairs:
        try:
            out[as_text(name)] = int(value)
        except ValueError:
            continue
    return out


def _first_score(reply: Any) -> int | None:
    """ZRANGE .. WITHSCORES of one member: flat (RESP2) or a pair (RESP3)."""
    if not reply:
        return None
    score = reply[0][1] if isinstance(reply[0], list | tuple) else reply[1]
    return int(float(score))


def _run_times(counts: Mapping[str, int], prefix: str = "") -> RunTimes:
    return RunTimes(tuple(counts.get(f"{prefix}h{i + 1}", 0)
                          for i in range(len(RUN_BOUNDS_MS) + 1)),
                    counts.get(f"{prefix}run_ms", 0))


def totals_from(counts: Mapping[str, int]) -> QueueTotals:
    return QueueTotals(completed=counts.get("completed", 0), failed=counts.get("failed", 0),
                       cancelled=counts.get("cancelled", 0), retried=counts.get("retried", 0),
                       run_times=_run_times(counts))


def check_minutes(minutes: object) -> int:
    if (not isinstance(minutes, int) or isinstance(minutes, bool)
            or not 1 <= minutes <= TREND_HOURS * 60):
        raise InvalidOptions(f"minutes must be a whole number from 1 to {TREND_HOURS * 60} "
                             f"(the per-minute counters are kept {TREND_HOURS} h), "
                             f"got {minutes!r}")
    return minutes


def queue_metrics_plan(sdk: Sdk, queues: Sequence[str] | None, minutes: int,
                       with_totals: bool) -> Plan[list[QueueMetrics]]:
    """One round trip (two without ``queues``: the registry first)."""
    check_minutes(minutes)
    names = yield from sdk._queue_names(queues)
    if not names:
        return []
    now = now_ms()
    current = now // MINUTE
    first = current - max(minutes, 60) + 1  # the last hour's run times need 60 minutes
    hours = range(first * MINUTE // HOUR, current * MINUTE // HOUR + 1)
    steps: list[Cmd[Any]] = []
    for q in names:
        qk = sdk._qk(q)
        steps += [Cmd(("HGETALL", qk.trend(h)), _ints) for h in hours]
        steps.append(Cmd(("ZRANGE", qk.status("waiting"), 0, 0, "WITHSCORES"), _first_score))
        if with_totals:
            steps.append(Cmd(("HGETALL", qk.totals), _ints))
    replies = yield steps
    per = len(hours) + 1 + with_totals
    out = []
    for n, q in enumerate(names):
        got = replies[n * per:(n + 1) * per]
        trend = _trend(zip(hours, got[:len(hours)], strict=True), current, minutes)
        out.append(QueueMetrics(
            queue=q, last_minute_ms=current * MINUTE, completed=trend[0], failed=trend[1],
            last_hour=trend[2], oldest_waiting_ms=got[len(hours)],
            totals=totals_from(got[-1]) if with_totals else None))
    return out


def _trend(hashes: Iterable[tuple[int, dict[str, int]]], current: int, minutes: int
           ) -> tuple[list[int], list[int], RunTimes]:
    """Completed and failed per minute of the last ``minutes`` (ending with minute
    ``current``) and the run times of the last 60, from the hourly hashes (one pass: a
    page reads three hours of them at every live refresh)."""
    first, hour_from = current - minutes + 1, current - 59
    completed, failed = [0] * minutes, [0] * minutes
    runs: dict[str, int] = {}
    for h, counts in hashes:
        for name, value in counts.items():
            minute, _, what = name.partition(":")
            if not minute.isdigit():
                continue
            m = h * 60 + int(minute)
            if first <= m <= current:
                if what == "completed":
                    completed[m - first] = value
                elif what == "failed":
                    failed[m - first] = value
            if hour_from <= m <= current and (what[:1] == "h" or what == "run_ms"):
                runs[what] = runs.get(what, 0) + value
    return completed, failed, _run_times(runs)


def queue_metrics(sdk: Sdk, queues: Sequence[str] | None = None, *, minutes: int = 180,
                  with_totals: bool = False) -> list[QueueMetrics]:
    """Durations and the per-minute trend of ``queues`` (every queue: ``None``) over the
    last ``minutes``; ``with_totals``: the monotonic totals too (the metrics)."""
    return sdk._run(queue_metrics_plan(sdk, queues, minutes, with_totals))


async def aqueue_metrics(sdk: Sdk, queues: Sequence[str] | None = None, *,
                         minutes: int = 180, with_totals: bool = False
                         ) -> list[QueueMetrics]:
    return await sdk._arun(queue_metrics_plan(sdk, queues, minutes, with_totals))


def duration_label(ms: float | None) -> str:
    """A duration for the pages: "850 ms", "4.2 s", "12 s", "3.5 min", "2.5 h"; "—" for none."""
    if ms is None or math.isnan(ms):
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    secs = ms / 1000
    if secs < 60:
        return f"{secs:.1f} s" if secs < 10 else f"{secs:.0f} s"
    if secs < 3600:
        return f"{secs / 60:.1f} min" if secs < 600 else f"{secs / 60:.0f} min"
    return f"{secs / 3600:.1f} h"
