"""Dead-letter queue: a capped stream of jobs that ended ``failed`` for good.

What goes in (when ``processor["dlq"]`` is set, ``{}`` meaning all defaults):

- a handler failure that will not be retried (reason ``no_retries``,
  ``retries_exhausted`` or ``retry_refused``), if ``should_send_to_dlq(message,
  error, attempts)`` allows it (no predicate: always);
- engine failures, always: ``poison`` (delivered ``max_deliveries`` times without
  finishing), ``malformed`` (a stream entry or record that cannot be decoded),
  ``unknown_event`` (no handler for the job's event on the worker that got it).

Each entry has the fields ``id``, ``queue``, ``name``, ``reason``, ``error``,
``attempts`` and ``job`` (the final job record as JSON) -- the Sdk reads exactly
these (``Sdk.list_dlq``, ``Sdk.requeue_dlq``). The stream is trimmed with
``XADD ... MAXLEN ~ maxlen`` (default 10,000).

Where it is written: *after* finish.lua has applied the failure, by the worker,
in one pipeline per batch -- not inside finish.lua. The DLQ key is global (one
stream for every queue, as the original remq has it), so writing it from a per-queue
script would cross hash slots and fail on a Redis Cluster. Writing it only for
outcomes finish.lua reports as applied means no duplicate entry when another
worker already finished the job. The price: a worker killed in the
milliseconds between the two loses that DLQ entry, never the job -- the record
stays ``failed`` with its errors in the failed index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import jsonutil
from ..errors import CorruptRecord, InvalidOptions
from ..store import records
from ..store.connection import Connection
from ..store.keys import Keys
from ..store.records import decode
from ..store.scripts import arun_many
from ..types import Message
from ..worker.batcher import Batcher

log = logging.getLogger("django_remq.dlq")

DEFAULT_MAXLEN = 10_000
DLQ_KEYS = frozenset({"stream_key", "should_send_to_dlq", "maxlen"})
ShouldSend = Callable[[Message, BaseException, int], bool]


@dataclass(frozen=True)
class DeadLetterConfig:
    """Validated ``processor["dlq"]``; ``stream_key=None`` means ``<prefix>:dlq``."""

    stream_key: str | None = None
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
        if key is not None and (not isinstance(key, str) or not key):
            raise InvalidOptions(f"processor 'dlq': 'stream_key' must be a string, got {key!r}")
        if not isinstance(maxlen, int) or isinstance(maxlen, bool) or maxlen < 1:
            raise InvalidOptions(f"processor 'dlq': 'maxlen' must be an int >= 1, got {maxlen!r}")
        if pred is not None and not callable(pred):
            raise InvalidOptions("processor 'dlq': 'should_send_to_dlq' must be a function "
                                 f"(message, error, attempts) -> bool, got {pred!r}")
        return cls(key, maxlen, pred)

    def stream(self, keys: Keys) -> str:
        return self.stream_key or keys.dlq

    def wants(self, message: Message, exc: BaseException, attempts: int) -> bool:
        """The user's predicate; one that raises counts as "yes" (keep the evidence)."""
        if self.should_send_to_dlq is None:
            return True
        try:
            return bool(self.should_send_to_dlq(message, exc, attempts))
        except Exception:
            log.exception("dlq 'should_send_to_dlq' raised; sending job %s to the DLQ anyway",
                          message.id)
            return True


def entry(job_id: str, queue: str, name: str, reason: str, error: str,
          attempts: int) -> dict[str, str]:
    """The fields of one DLQ stream entry (the Sdk's contract), but ``job``: the writer
    adds the final record, read back after finish.lua applied the failure."""
    return {"id": job_id, "queue": queue, "name": name, "reason": reason, "error": error,
            "attempts": str(attempts)}


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class DeadLetterWriter:
    """Adds entries to the DLQ stream in the background (a :class:`Batcher`): one round
    trip reads the final records, one writes the entries (failures only: the happy path
    never pays). One entry's bad record never costs another entry."""

    MAX_FAILURES = 5

    def __init__(self, conn: Connection, keys: Keys, stream_key: str, maxlen: int) -> None:
        self.conn, self.keys, self.stream_key, self.maxlen = conn, keys, stream_key, maxlen
        self._batcher: Batcher[Mapping[str, str]] = Batcher(self._write, retry=self._retry)

    def add(self, fields: Mapping[str, str]) -> None:
        self._batcher.add(fields)

    def _retry(self, batch: Sequence[Mapping[str, str]], exc: Exception,
               failures: int) -> float | None:
        if failures > self.MAX_FAILURES:
            log.error("dropping %d DLQ entries (%s); the jobs stay failed", len(batch), exc)
            return None
        log.warning("cannot write %d DLQ entries (%s); retrying", len(batch), exc)
        return 0.2 * failures

    async def _write(self, batch: list[Mapping[str, str]]) -> None:
        client = self.conn.aio
        found = await arun_many(client, [
            records.read(self.keys.queue(f["queue"]), [f["id"]], with_logs=True)
            for f in batch])
        pipe = client.pipeline(transaction=False)
        for fields, [(record, logs)] in zip(batch, found, strict=True):
            job = final_record(record, logs, fields["queue"]) if record else {}
            entry_fields: dict[Any, Any] = {**fields, "job": jsonutil.dumps(job)}
            pipe.xadd(self.stream_key, entry_fields, maxlen=self.maxlen, approximate=True)
        await pipe.execute()

    async def close(self, timeout: float = 5.0) -> None:
        if not await self._batcher.close(timeout):
            log.error("DLQ entries not written before shutdown: %d", self._batcher.pending)


def final_record(fields: Mapping[str, str], logs: list[str], queue: str) -> dict[str, Any]:
    """The record as the DLQ keeps it: decoded, or, if corrupt, its fields as found."""
    try:
        return decode(fields, logs, queue).to_dict()
    except CorruptRecord as exc:
        log.warning("%s; its DLQ entry keeps the raw fields", exc)
        return dict(fields)
