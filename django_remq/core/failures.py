"""Outcomes for jobs that failed or could not even start, with their errors recorded."""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping

from . import jsonutil
from .commands import Outcome
from .errors import MalformedMessage

MAX_TRACEBACK = 8_000


def error_json(exc: BaseException, attempt: int) -> str:
    """One entry of a record's ``errors`` list (finish.lua appends it)."""
    tb = "".join(traceback.format_exception(exc))
    return jsonutil.dumps({"message": str(exc) or type(exc).__name__, "type": type(exc).__name__,
                           "traceback": tb[-MAX_TRACEBACK:], "attempt": attempt,
                           "timestamp": int(time.time() * 1000)})


def failed(entry_id: str, job_id: str, exc: BaseException, attempt: int) -> Outcome:
    return Outcome(entry_id, job_id, "failed", error=error_json(exc, attempt))


def malformed(queue: str, entry_id: str, raw: Mapping[str, str]) -> Outcome:
    """A failed record standing in for a stream entry that names no job."""
    exc = MalformedMessage(
        f"stream entry {entry_id} in queue {queue!r} has no 'id' field (fields: "
        f"{sorted(raw)}); entries must be written by emit()"
    )
    job_id = f"malformed-{entry_id}"
    fields = {"id": job_id, "name": raw.get("name", "") or "(malformed)", "queue": queue,
              "data": jsonutil.dumps(dict(raw))}
    return Outcome(entry_id, job_id, "malformed", fields, error=error_json(exc, 1))
