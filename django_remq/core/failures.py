"""Outcomes for jobs that failed or could not even start, with their errors recorded.

Engine failures (poison, malformed, unknown event) carry their dead-letter entry;
the Processor writes it if a DLQ is configured (see :mod:`.dlq`).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from . import dlq, jsonutil
from .commands import Outcome
from .errors import MalformedMessage, PoisonMessage, UnknownEvent
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


def engine_reason(exc: BaseException) -> str:
    """The DLQ reason of a failure the handler did not cause."""
    if isinstance(exc, PoisonMessage):
        return "poison"
    if isinstance(exc, MalformedMessage):
        return "malformed"
    if isinstance(exc, UnknownEvent):
        return "unknown_event"
    return "error"


def final_job(record: AdminJobData, errors: str) -> dict[str, Any]:
    """The record as it ends (for the DLQ entry's ``job``)."""
    errs = [JobError(**e) for e in jsonutil.loads(errors)]
    return replace(record, status="failed", errors=errs).to_dict()


def failed(entry_id: str, job_id: str, fields: Mapping[str, str], exc: BaseException,
           record: AdminJobData | None = None) -> Outcome:
    previous = record.errors if record is not None else fields.get("errors")
    attempt = (record.retried_attempts if record else int(fields.get("retried_attempts") or 0)) + 1
    errors = errors_with(previous, exc, attempt)
    if record is not None:
        job, queue, name = final_job(record, errors), record.state.queue, record.state.name
    else:
        job = {**fields, "status": "failed", "errors": jsonutil.loads(errors)}
        queue, name = fields.get("queue", ""), fields.get("name", "")
    dead = dlq.entry(job_id, queue, name, engine_reason(exc), dlq.describe(exc), attempt, job)
    return Outcome(entry_id, job_id, "failed", {"errors": errors}, dead=dead)


def malformed(queue: str, entry_id: str, raw: Mapping[str, str]) -> Outcome:
    """A failed record standing in for a stream entry that names no job."""
    exc = MalformedMessage(
        f"stream entry {entry_id} in queue {queue!r} has no 'id' field (fields: "
        f"{sorted(raw)}); entries must be written by emit()"
    )
    job_id = f"malformed-{entry_id}"
    fields = {"id": job_id, "name": raw.get("name", "") or "(malformed)", "queue": queue,
              "data": jsonutil.dumps(dict(raw)), "errors": errors_with(None, exc, 1)}
    dead = dlq.entry(job_id, queue, fields["name"], "malformed", dlq.describe(exc), 1,
                     {**fields, "status": "failed", "errors": jsonutil.loads(fields["errors"])})
    return Outcome(entry_id, job_id, "malformed", fields, dead=dead)
