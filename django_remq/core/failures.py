"""Outcomes for jobs that failed or could not even start, with their errors recorded."""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from typing import Any

from . import jsonutil
from .commands import Outcome
from .errors import MalformedMessage
from .types import AdminJobData, JobError

MAX_TRACEBACK = 8_000


def error_entry(exc: BaseException, attempt: int) -> dict[str, Any]:
    tb = "".join(traceback.format_exception(exc))
    return {"message": str(exc) or type(exc).__name__, "type": type(exc).__name__,
            "traceback": tb[-MAX_TRACEBACK:], "attempt": attempt,
            "timestamp": int(time.time() * 1000)}


def errors_with(previous: list[JobError] | str | None, exc: BaseException,
                attempt: int) -> str:
    """The record's ``errors`` field with one more entry (JSON)."""
    if isinstance(previous, str):
        items: list[Any] = jsonutil.loads(previous or "[]")
    else:
        items = [e.__dict__ for e in previous or ()]
    return jsonutil.dumps([*items, error_entry(exc, attempt)])


def failed(entry_id: str, job_id: str, fields: Mapping[str, str], exc: BaseException,
           record: AdminJobData | None = None) -> Outcome:
    previous = record.errors if record is not None else fields.get("errors")
    attempt = (record.retried_attempts if record else int(fields.get("retried_attempts") or 0)) + 1
    return Outcome(entry_id, job_id, "failed", {"errors": errors_with(previous, exc, attempt)})


def malformed(queue: str, entry_id: str, raw: Mapping[str, str]) -> Outcome:
    """A failed record standing in for a stream entry that names no job."""
    exc = MalformedMessage(
        f"stream entry {entry_id} in queue {queue!r} has no 'id' field (fields: "
        f"{sorted(raw)}); entries must be written by emit()"
    )
    job_id = f"malformed-{entry_id}"
    fields = {"id": job_id, "name": raw.get("name", "") or "(malformed)", "queue": queue,
              "data": jsonutil.dumps(dict(raw)), "errors": errors_with(None, exc, 1)}
    return Outcome(entry_id, job_id, "malformed", fields)
