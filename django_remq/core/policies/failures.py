"""Outcomes for jobs that failed or could not even start, with their errors recorded."""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping

from .. import jsonutil
from ..errors import CorruptRecord, MalformedMessage, PoisonMessage, UnknownEvent
from ..store.ops import Outcome
from . import dlq

MAX_TRACEBACK = 8_000


def error_json(exc: BaseException, attempt: int) -> str:
    """One entry of a record's ``errors`` list (finish.lua appends it)."""
    tb = "".join(traceback.format_exception(exc))
    return jsonutil.dumps({"message": str(exc) or type(exc).__name__, "type": type(exc).__name__,
                           "traceback": tb[-MAX_TRACEBACK:], "attempt": attempt,
                           "timestamp": int(time.time() * 1000)})


def engine_reason(exc: BaseException) -> str:
    """The DLQ reason of a failure the handler did not cause."""
    if isinstance(exc, PoisonMessage):
        return "poison"
    if isinstance(exc, CorruptRecord):
        return "corrupt"
    if isinstance(exc, MalformedMessage):
        return "malformed"
    if isinstance(exc, UnknownEvent):
        return "unknown_event"
    return "error"


def failed(entry_id: str, job_id: str, exc: BaseException, attempt: int, queue: str,
           name: str) -> Outcome:
    """A job the engine fails itself (poison, corrupt, unknown event): always DLQ-worthy."""
    dead = dlq.entry(job_id, queue, name, engine_reason(exc), dlq.describe(exc), attempt)
    return Outcome(entry_id, job_id, "failed", error=error_json(exc, attempt), dead=dead)


def malformed(queue: str, entry_id: str, raw: Mapping[str, str]) -> Outcome:
    """A failed record standing in for a stream entry that names no job."""
    exc = MalformedMessage(
        f"stream entry {entry_id} in queue {queue!r} has no 'id' field (fields: "
        f"{sorted(raw)}); entries must be written by emit()"
    )
    job_id = f"malformed-{entry_id}"
    fields = {"id": job_id, "name": raw.get("name", "") or "(malformed)", "queue": queue,
              "data": jsonutil.dumps(dict(raw))}
    dead = dlq.entry(job_id, queue, fields["name"], "malformed", dlq.describe(exc), 1)
    return Outcome(entry_id, job_id, "malformed", fields, error=error_json(exc, 1), dead=dead)
