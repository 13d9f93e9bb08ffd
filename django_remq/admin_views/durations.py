"""How long jobs wait and run, for the pages: per job from its record, per queue from the
counters finish.lua keeps (:mod:`..core.sdk.metrics`).

A job's record keeps when it was emitted (``timestamp``), when it was due
(``delay_until``), when its last run started (``last_run``) and when it finished
(``finished_at``); its errors keep when each failed run ended. Its wait is from being
put on its way (the latest of emitted, due and the last failure before the run) to the
start of its last run; its run time from that start to the finish. A job still waiting
or running shows the time so far, which the live refresh moves on.
"""

from __future__ import annotations

from typing import Any

from ..core.sdk.metrics import QueueMetrics, duration_label
from ..core.types import AdminJobData

WAITING = ("waiting", "paused")


def _queued_at(job: AdminJobData) -> int:
    """When the job was last put on its way: emitted, due, or its previous run failed."""
    queued = max(job.timestamp or 0, job.delay_until or 0)
    # a job on its way again counts from its last failure; another one (running or
    # finished) from the failure before its last run (its own error, if any, came after)
    again = job.status in (*WAITING, "delayed")
    failed = [e.timestamp for e in job.errors if e.timestamp
              and (again or not job.last_run or e.timestamp <= job.last_run)]
    return max(queued, *failed) if failed else queued


def job_durations(job: AdminJobData, now_ms: int) -> dict[str, Any]:
    """``wait`` / ``run``: labels ("" when it does not apply), ``*_ms`` the figures, and
    ``waiting`` / ``running``: the figure is still growing."""
    queued = _queued_at(job)
    started = job.last_run if job.last_run and job.last_run >= queued else None
    wait_ms = run_ms = None
    waiting = running = False
    if started is not None:
        wait_ms = max(0, started - queued) if queued else None
        if job.status == "processing":
            run_ms, running = max(0, now_ms - started), True
        elif job.finished_at and job.finished_at >= started:
            run_ms = job.finished_at - started
    elif job.status in WAITING and queued and queued <= now_ms:
        wait_ms, waiting = now_ms - queued, True
    elif job.status == "processing" and job.last_run:
        run_ms, running = max(0, now_ms - job.last_run), True
    return {"wait": "" if wait_ms is None else duration_label(wait_ms), "wait_ms": wait_ms,
            "run": "" if run_ms is None else duration_label(run_ms), "run_ms": run_ms,
            "waiting": waiting, "running": running}


def queue_durations(m: QueueMetrics | None, now_ms: int) -> dict[str, Any]:
    """A queue's oldest wait and last hour's run times, as labels ("—": nothing to say)."""
    if m is None:
        return {"oldest": "—", "avg": "—", "p95": "—", "runs": 0}
    oldest = m.oldest_wait_ms(now_ms)
    hour = m.last_hour
    return {"oldest": duration_label(oldest), "oldest_ms": oldest,
            "avg": duration_label(hour.average_ms), "p95": duration_label(hour.quantile_ms(0.95)),
            "runs": hour.runs}
