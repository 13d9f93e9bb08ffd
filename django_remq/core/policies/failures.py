"""Outcomes for jobs that failed or could not even start, with their errors recorded."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from .. import jsonutil
from ..errors import CorruptRecord, MalformedMessage, PoisonMessage, UnknownEvent
from ..store.calls import Outcome
from ..store.records import not_utf8
from ..types import JobStatus
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


def malformed_error(queue: str, entry_id: str, raw: Mapping[str, str]) -> MalformedMessage:
    """Why deliver.lua found a stream entry malformed: no ``id`` field, or bytes that are
    not UTF-8 (``raw`` then holds them escaped, the fields at fault named)."""
    where = f"stream entry {entry_id} in queue {queue!r}"
    bad_bytes = not_utf8(raw)
    if bad_bytes is not None:
        return MalformedMessage(f"{where}: {bad_bytes}; entries must be written by emit(), "
                                "which writes UTF-8 only (its bytes are kept escaped in data)")
    return MalformedMessage(f"{where} has no 'id' field (fields: {sorted(raw)}); entries "
                            "must be written by emit()")


def malformed(queue: str, entry_id: str, raw: Mapping[str, str]) -> Outcome:
    """A failed record standing in for a stream entry that names no usable job; its
    ``data`` keeps the entry's fields (bytes that are not UTF-8 escaped, their fields
    named under ``records.NOT_UTF8``: see ``records.pairs_to_dict``)."""
    exc = malformed_error(queue, entry_id, raw)
    job_id = f"malformed-{entry_id}"
    fields = {"id": job_id, "name": raw.get("name", "") or "(malformed)", "queue": queue,
              "data": jsonutil.dumps(dict(raw))}
    dead = dlq.entry(job_id, queue, fields["name"], "malformed", dlq.describe(exc), 1)
    return Outcome(entry_id, job_id, "malformed", fields, error=error_json(exc, 1), dead=dead)


#: Why deliver.lua's "corrupt" verdict names a field (any other: bytes not UTF-8).
_CORRUPT_WHY = {"deliveries": "is not a count",
                "status": f"is not a job status (one of {', '.join(JobStatus)})"}


def corrupt_verdict(queue: str, job_id: str, field: str, value: str) -> CorruptRecord:
    """The error of deliver.lua's "corrupt" verdict: the field it names, and its value
    (escaped when it is not UTF-8)."""
    why = _CORRUPT_WHY.get(field)
    shown = f"{value[:80]!r}"
    if why is None:  # escaped already: shown as it is (a repr would double each "\")
        why, shown = r"is not UTF-8 (bytes above 0x7f shown as \xNN)", f"'{value[:80]}'"
    return CorruptRecord(f"job {job_id} in queue {queue!r} has a corrupt record: "
                         f"{field}={shown} {why}; the job fails, its other fields kept "
                         "as found")


def _options(text: str) -> dict[str, Any]:
    options = jsonutil.loads(text)
    if not isinstance(options, dict):
        raise TypeError("must be a JSON object")
    return options


#: How a worker reads each record field it runs a job with (see the consumer's
#: ``to_message``); a value that does not read is named by :func:`unreadable`.
RUN_PARSERS: dict[str, Callable[[str], Any]] = {
    "options": _options, "data": jsonutil.loads, "retried_attempts": int, "retry_count": int,
    "deliveries": int, "timestamp": int}
#: Errors a damaged field's value can raise on reading (deep JSON: RecursionError).
UNREADABLE = (KeyError, ValueError, TypeError, RecursionError)


def unreadable(queue: str, job_id: str, fields: Mapping[str, str],
               exc: BaseException) -> CorruptRecord:
    """The CorruptRecord of a record a worker could not read (``exc``), naming the field:
    each is read again on its own (a slow path for a rare case)."""
    where = f"job {job_id} in queue {queue!r} has a corrupt record"
    if not fields.get("name"):
        return CorruptRecord(f"{where}: field 'name' is missing")
    for name, parse in RUN_PARSERS.items():
        value = fields.get(name)
        if value:
            try:
                parse(value)
            except UNREADABLE as bad:
                return CorruptRecord(f"{where}: field {name!r} = {value[:80]!r}: "
                                     f"{type(bad).__name__}: {str(bad)[:200]}")
    return CorruptRecord(f"{where}: {type(exc).__name__}: {exc}")
