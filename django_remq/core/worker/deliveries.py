"""What a delivery becomes: a :class:`Message` to run, or the outcome of one that will not.

deliver.lua gives each delivery a verdict: ``run``, or why not (``poison``, ``corrupt``,
``malformed``, ``unreadable``, ``orphan``, ``held``, ``requeued``...). Those that cannot run
are failed (and dead-lettered, if configured) or dropped with a log line saying why;
nothing here keeps state, so the consumer decides what it has seen already.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from .. import jsonutil
from ..errors import CorruptRecord, PoisonMessage
from ..policies import failures
from ..store.calls import Delivery, Outcome
from ..store.keys import Keys
from ..types import Message

log = logging.getLogger("django_remq.consumer")


def refusal(queue: str, d: Delivery, max_deliveries: int, keys: Keys) -> Outcome | None:
    """The outcome to acknowledge for a delivery that will not run, or ``None`` when it is
    dropped (or left where it is) with a log line."""
    if d.verdict == "poison":
        exc = PoisonMessage(
            f"job {d.job_id} in queue {queue!r} was delivered {d.fields.get('deliveries')} "
            f"times without finishing (max_deliveries={max_deliveries}); "
            "its worker probably crashed or was killed each time"
        )
        log.error("%s", exc)
        return failed(queue, d, exc)
    if d.verdict == "corrupt":
        return failed(queue, d, failures.corrupt_verdict(
            queue, d.job_id, d.fields["corrupt_field"], d.fields["corrupt_value"]))
    if d.verdict == "unreadable":
        log.error("job %s in queue %r cannot run: its key %s holds a %s, not a hash; "
                  "its entry %s was dropped and the key left as found", d.job_id, queue,
                  keys.queue(queue).job(d.job_id), d.fields.get("type"), d.entry_id)
    elif d.verdict == "orphan":
        log.warning("entry %s in queue %r names job %s, but there is no job with that "
                    "id (forged, or its record was deleted); dropped", d.entry_id, queue,
                    d.job_id)
    elif d.verdict == "malformed":
        log.error("malformed entry: %s: %r", failures.malformed_error(
            queue, d.entry_id, d.fields), d.fields)
        return on_lane(d.lane, failures.malformed(queue, d.entry_id, d.fields))
    elif d.verdict != "held":
        log.debug("entry %s (job %s) in %r: %s", d.entry_id, d.job_id, queue, d.verdict)
    return None


def failed(queue: str, d: Delivery, exc: Exception) -> Outcome:
    """The failed outcome of a delivery that cannot run, on its lane."""
    if isinstance(exc, CorruptRecord):
        log.error("%s", exc)
    attempt = _int(d.fields.get("retried_attempts")) + 1
    return on_lane(d.lane, failures.failed(d.entry_id, d.job_id, exc, attempt, queue,
                                           d.fields.get("name", "")))


def on_lane(lane: int, outcome: Outcome) -> Outcome:
    """``outcome`` for an entry on ``lane`` (finish.lua acknowledges it there)."""
    return replace(outcome, lane=lane) if lane else outcome


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def to_message(queue: str, d: Delivery) -> Message:
    """A delivery's record fields as a Message; raises on a corrupt record."""
    f = d.fields
    options = jsonutil.loads(f["options"]) if f.get("options") else {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a JSON object, got {f['options']!r}")
    return Message(id=d.job_id, entry_id=d.entry_id, queue=queue, name=f["name"],
                   data=jsonutil.loads(f.get("data") or "null"), options=options,
                   retried_attempts=int(f.get("retried_attempts") or 0),
                   retry_count=int(f["retry_count"]) if f.get("retry_count") else None,
                   deliveries=int(f.get("deliveries") or 1),
                   timestamp=int(f.get("timestamp") or 0),
                   extra=d.extra or {})
