"""Sdk records as what the templates show: datetimes, pretty JSON, valid actions."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from django.urls import reverse
from django.utils import timezone

from ..core.types import AdminJobData, DlqEntry, WorkerInfo
from .durations import job_durations

#: The job actions the pages offer in each status (the Sdk refuses the others).
ACTIONS: dict[str, tuple[str, ...]] = {
    "waiting": ("pause", "cancel", "delete"),
    "delayed": ("run_now", "pause", "cancel", "delete"),
    "paused": ("resume", "cancel", "delete"),
    "processing": ("cancel", "delete"),
    "completed": ("delete",),
    "failed": ("retry", "delete"),
    "cancelled": ("retry", "delete"),
}
JOB_ACTIONS = ("retry", "cancel", "delete", "pause", "resume", "run_now")
#: Actions that lose something: they go through a confirmation page first.
DESTRUCTIVE = frozenset({"cancel", "delete"})
LABELS = {"retry": "Retry", "cancel": "Cancel", "delete": "Delete", "pause": "Pause",
          "resume": "Resume", "run_now": "Run now"}


def when(ms: int | None) -> datetime | None:
    """Epoch ms as an aware datetime (templates localise it); 0/None as nothing."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def short(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def plural(n: int, one: str, many: str | None = None) -> str:
    """``"1 dead letter"``, ``"3 dead letters"``: a count with its noun agreeing."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def error_text(error: Any) -> str:
    """An error as a list shows it: its exception type, then its message."""
    kind = getattr(error, "type", "") or ""
    message = getattr(error, "message", "") or ""
    return f"{kind}: {message}" if kind and not message.startswith(kind) else message


#: How much of an error a listing row shows (the type, then the message).
ERROR_CHARS = 120
#: Statuses in which a job may still be retried automatically.
UNFINISHED = frozenset({"waiting", "delayed", "paused", "processing"})


def percent(progress: Any) -> float | None:
    """The progress of ``ctx.socket.update(data, 33)`` (stored as ``{data, progress}``) as
    0..100, else ``None``."""
    if isinstance(progress, dict):
        progress = progress.get("progress")
    if isinstance(progress, bool) or not isinstance(progress, int | float):
        return None
    return float(round(min(max(progress, 0), 100)))


def ago(ms: int | None, now_ms: int) -> str:
    """A compact age ("5 s", "3 min", "2 h", "4 d"); listings show 50 of them, so this is
    plain arithmetic rather than the ``timesince`` filter."""
    if not ms:
        return ""
    secs = abs(now_ms - ms) // 1000
    for size, unit in ((86_400, "d"), (3600, "h"), (60, "min")):
        if secs >= size:
            return f"{secs // size} {unit}"
    return f"{secs} s"


class Stamps:
    """Formats epoch ms in the current time zone, for one rendering."""

    def __init__(self) -> None:
        self.now_ms = int(time.time() * 1000)
        self.tz = timezone.get_current_timezone()
        self.jobs_url = reverse("remq_admin:jobs")

    def at(self, ms: int | None) -> str:
        return datetime.fromtimestamp(ms / 1000, self.tz).strftime("%Y-%m-%d %H:%M:%S") if ms \
            else ""

    def pair(self, ms: int | None) -> dict[str, str]:
        """``at`` (absolute time) and ``age`` of a past or future moment (a dict: templates
        resolve dict keys fastest)."""
        return {"at": self.at(ms), "age": ago(ms, self.now_ms)}


def job_row(job: AdminJobData, stamps: Stamps | None = None) -> dict[str, Any]:
    """A listing row: everything pre-formatted, so a 50-row page renders fast."""
    st = stamps or Stamps()
    errors = job.errors
    queue = job.state.queue
    if job.status == "delayed" and job.delay_until:
        last = {"verb": "runs in", **st.pair(job.delay_until)}
    elif job.finished_at:
        last = {"verb": "", **st.pair(job.finished_at)}
    elif job.last_run:
        last = {"verb": "started", **st.pair(job.last_run)}
    else:
        last = {"verb": "", "at": "", "age": ""}
    return {
        "id": job.id, "short_id": short(job.id, 14), "queue": queue, "event": job.state.name,
        "status": job.status,
        "url": job_url(queue, job.id, st),
        "queue_url": f"{st.jobs_url}?queue={quote(queue)}",
        "select": f"{queue}:{job.id}", "emitted": st.pair(job.timestamp), "last": last,
        # every run: those before (automatic and manual retries) and one since the job
        # was last put on its way, if it was delivered (running or finished)
        "attempts": job.retried_attempts + (1 if job.deliveries else 0),
        "progress": percent(job.progress),
        "error": error_text(errors[-1]) if errors and job.status == "failed" else "",
        # a cancel asked of a running job; once the job has stopped, its status says it
        "cancel_requested": bool(job.cancel_requested) and job.status == "processing",
        "durations": job_durations(job, st.now_ms),
    } | ({"error_short": short(error_text(errors[-1]), ERROR_CHARS)} if errors else {})


def job_detail(job: AdminJobData) -> dict[str, Any]:
    st = Stamps()
    row = job_row(job, st)
    row.update(ran=st.pair(job.last_run), finished=st.pair(job.finished_at))
    upcoming = job.delay_until if job.status in ("delayed", "paused") else None
    return {
        **row,
        "data": pretty(job.state.data), "options": pretty(job.state.options),
        "result": None if job.result is None else pretty(job.result),
        "update": _update(job.progress),
        "errors": [{"message": e.message, "type": e.type, "traceback": e.traceback,
                    "attempt": e.attempt, "at": st.at(e.timestamp)} for e in job.errors],
        # newest first (a running job's latest line is where the eye lands), each tagged
        # with the run that wrote it
        "logs": [{"message": entry.message, "at": when(entry.timestamp), "attempt": attempt}
                 for entry, attempt in reversed(log_attempts(job, row["attempts"]))],
        "next_run": st.pair(upcoming), "next_tick": st.pair(job.next_run),
        "lock_until": st.at(job.lock_until) if job.status == "processing" else "",
        # automatic retries left only mean something for a job that may still fail
        "retries_left": job.retry_count if job.status in UNFINISHED else 0,
        "retry_delay_ms": job.retry_delay_ms,
        "repeat_count": job.repeat_count, "priority": job.priority,
        "deliveries": job.deliveries, "worker": job.worker, "paused": job.paused,
        "actions": [(a, LABELS[a], a in DESTRUCTIVE) for a in ACTIONS.get(job.status, ())],
    }


def log_attempts(job: AdminJobData, runs: int) -> list[tuple[Any, int]]:
    """Each log line with the attempt that wrote it. A run that failed ended at its
    error's timestamp, so a line belongs to the first failed run that ended at or after
    it; a line after every error, to the latest run."""
    ends = sorted((e.timestamp, e.attempt) for e in job.errors
                  if e.timestamp and isinstance(e.attempt, int) and e.attempt > 0)
    out = []
    for entry in job.logs:
        attempt = next((a for t, a in ends if t >= entry.timestamp), max(runs, 1))
        out.append((entry, attempt))
    return out


def job_url(queue: str, job_id: str, st: Stamps) -> str:
    """A job page's URL (built, not reversed: a 50-row page asks 50 times)."""
    return f"{st.jobs_url}{quote(queue)}/{quote(job_id, safe='/')}/"


def corrupt_detail(job_id: str, queue: str, error: Exception) -> dict[str, Any]:
    """What the job page shows of a record that does not read (``CorruptRecord``): the
    error, where a job's errors go, and the one action that needs no record: Delete."""
    st = Stamps()
    empty = {"at": "", "age": ""}
    return {
        "id": job_id, "short_id": short(job_id, 14), "queue": queue,
        "event": "(corrupt record)", "status": "corrupt", "url": job_url(queue, job_id, st),
        "emitted": empty, "last": {"verb": "", **empty}, "ran": empty, "finished": empty,
        "next_run": empty, "next_tick": empty, "progress": None, "data": "", "options": "",
        "errors": [{"message": str(error), "type": type(error).__name__, "traceback": "",
                    "attempt": "", "at": ""}], "logs": [],
        "error": str(error), "error_short": short(str(error), 80),
        "actions": [("delete", LABELS["delete"], True)],
    }


def corrupt_row(job_id: str, queue: str, error: Exception, st: Stamps) -> dict[str, Any]:
    """A listing's note on a job left out because its record does not read."""
    return {"id": job_id, "short_id": short(job_id, 14), "queue": queue,
            "url": job_url(queue, job_id, st), "queue_url": f"{st.jobs_url}?queue={quote(queue)}",
            "select": f"{queue}:{job_id}", "error": str(error),
            "error_short": short(str(error), 120)}


def _update(progress: Any) -> str | None:
    """The data of the last ``ctx.socket.update`` as pretty JSON."""
    if isinstance(progress, dict) and "data" in progress:
        return None if progress["data"] is None else pretty(progress["data"])
    return None if progress is None or percent(progress) is not None else pretty(progress)


def dead_letter(entry: DlqEntry, st: Stamps) -> dict[str, Any]:
    return {"entry_id": entry.entry_id, "id": entry.id, "queue": entry.queue,
            "event": entry.name, "reason": entry.reason, "error": entry.error,
            "attempts": entry.attempts, "when": st.pair(entry.timestamp),
            "url": f"{st.jobs_url}{quote(entry.queue)}/{quote(entry.id, safe='/')}/"
            if entry.queue and entry.id else ""}


def worker(info: WorkerInfo, st: Stamps) -> dict[str, Any]:
    # a running job's page when the worker serves one queue (its heartbeat names ids
    # only), else the search that finds it in any queue
    one = info.queues[0] if len(info.queues) == 1 else None
    running = [{"id": job_id, "url": job_url(one, job_id, st) if one
                else f"{st.jobs_url}?q={quote(job_id)}"} for job_id in info.running]
    return {"id": info.id, "host": info.host, "pid": info.pid, "queues": info.queues,
            "concurrency": info.concurrency, "running": running,
            "busy": len(info.running), "last_seen": st.pair(info.last_seen),
            "up": st.pair(info.started), "rss": info.rss, "tasks_run": info.tasks_run,
            "tasks_failed": info.tasks_failed,
            "load": percent(100 * len(info.running) / info.concurrency)
            if info.concurrency else None}
