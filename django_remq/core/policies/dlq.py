"""Dead-letter queue: per-queue capped streams of jobs that ended ``failed`` for good.

What goes in (when ``processor["dlq"]`` is set, ``{}`` meaning all defaults):

- a handler failure that will not be retried (reason ``no_retries``,
  ``retries_exhausted`` or ``retry_refused``), if ``should_send_to_dlq(message,
  error, attempts)`` allows it (no predicate: always). ``attempts`` is the number of
  retries done before this last failure (``message.retried_attempts``: 0 for a job that
  failed on its first run), as the original remq passes it, so a rule ported from it,
  ``attempts >= 3``, still means "after 3 retries";
- engine failures, always: ``poison`` (delivered ``max_deliveries`` times without
  finishing), ``malformed`` (a stream entry that names no job), ``corrupt`` (a record
  that cannot be read or updated), ``unknown_event`` (no handler for the job's event
  on the worker that got it).

Where it is written: by finish.lua, in the same script that makes the job
``failed`` -- so a job is failed with its dead letter or not at all, whatever
happens to the worker. That needs the stream in the queue's hash slot, so each
queue has its own, ``<prefix>:{<queue>}:<stream_key>`` (``stream_key`` defaults
to ``dlq``; it is the stream's name within the queue, not a full key). The Sdk
reads the queues' streams together; its entry ids name the queue
(``"<queue>:<stream id>"``). The predicate is Python, so the worker asks it before
the finish call and sends the decision with the outcome; the script only writes.

Each entry has the fields ``id``, ``queue``, ``name``, ``reason``, ``error``,
``attempts`` (the runs made, the last included: one more than the predicate's),
``job`` (the final record's fields as a JSON object) and, if the job logged anything,
``logs`` (its log lines, a JSON array) -- the Sdk decodes them (``DlqEntry.job`` is
the decoded job). Each stream is trimmed with
``XADD ... MAXLEN ~ maxlen`` (default 10,000).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidOptions
from ..store.keys import DLQ_NAME, validate_dlq_name
from ..types import Message

log = logging.getLogger("django_remq.dlq")

DEFAULT_MAXLEN = 10_000
DLQ_KEYS = frozenset({"stream_key", "should_send_to_dlq", "maxlen"})
ShouldSend = Callable[[Message, BaseException, int], bool]


@dataclass(frozen=True)
class DeadLetterConfig:
    """Validated ``processor["dlq"]``; ``stream_key`` is each queue's stream name."""

    stream_key: str = DLQ_NAME
    maxlen: int = DEFAULT_MAXLEN
    should_send_to_dlq: ShouldSend | None = None

    @classmethod
    def from_config(cls, config: Any) -> DeadLetterConfig | None:
        if config is None or config is False:
            return None
        if config is True:
            return cls()
        if not isinstance(config, Mapping):
            raise InvalidOptions(f"processor 'dlq' must be a dict (or None), got {config!r}")
        unknown = set(config) - DLQ_KEYS
        if unknown:
            raise InvalidOptions(f"processor 'dlq' has unknown keys {sorted(unknown)}; allowed: "
                                 f"{', '.join(sorted(DLQ_KEYS))}")
        key, maxlen = config.get("stream_key"), config.get("maxlen", DEFAULT_MAXLEN)
        pred = config.get("should_send_to_dlq")
        if key is not None:
            try:
                validate_dlq_name(key)
            except ValueError as exc:
                raise InvalidOptions(f"processor 'dlq': {exc}") from None
        if not isinstance(maxlen, int) or isinstance(maxlen, bool) or maxlen < 1:
            raise InvalidOptions(f"processor 'dlq': 'maxlen' must be an int >= 1, got {maxlen!r}")
        if pred is not None and not callable(pred):
            raise InvalidOptions("processor 'dlq': 'should_send_to_dlq' must be a function "
                                 f"(message, error, attempts) -> bool, got {pred!r}")
        return cls(key or DLQ_NAME, maxlen, pred)

    def wants(self, message: Message, exc: BaseException, retried: int) -> bool:
        """The user's predicate, given the retries done (its ``attempts``); one that
        raises counts as "yes" (keep the evidence)."""
        if self.should_send_to_dlq is None:
            return True
        try:
            return bool(self.should_send_to_dlq(message, exc, retried))
        except Exception:
            log.exception("dlq 'should_send_to_dlq' raised; sending job %s to the DLQ anyway",
                          message.id)
            return True


def entry(job_id: str, queue: str, name: str, reason: str, error: str,
          attempts: int) -> dict[str, str]:
    """The fields of one DLQ stream entry (the Sdk's contract), but ``job`` and ``logs``:
    finish.lua adds the final record as it leaves it."""
    return {"id": job_id, "queue": queue, "name": name, "reason": reason, "error": error,
            "attempts": str(attempts)}


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
