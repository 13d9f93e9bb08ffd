"""The writes of prepared jobs: one round trip per batch, and errors that name the fix.

:meth:`.TaskManager.prepare` validates and encodes each job (no I/O); what is here turns a
batch of prepared jobs into script steps (the queue registry, emit.lua per queue, the
debounced ones, a replica wait) and reads the job ids back from the replies, the same for
the sync and the asyncio write.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.exceptions

from .errors import InvalidOptions, RedisTimeout, RedisUnavailable, RemqError
from .policies import debounce
from .store import calls
from .store.calls import NewJob, check_extra_fields
from .store.connection import Connection
from .store.keys import Keys
from .store.replicas import ReplicaWait
from .store.scripts import Cmd, Step, arun_many, run_many

T = TypeVar("T")
#: Jobs written per round trip by ``emit_many`` and ``enqueue``.
EMIT_CHUNK = 1000


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), consumed as they are made."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def emit_batch(prepared: Sequence[tuple[str, NewJob]], keys: Keys, known_queues: set[str],
               replica_wait: ReplicaWait | None) -> EmitBatch:
    """The steps that write prepared jobs in one round trip: the queue registry (for
    queues not in ``known_queues`` yet), then per queue one emit.lua call for plain jobs
    and one call per trailing-debounced job."""
    by_queue: defaultdict[str, list[NewJob]] = defaultdict(list)
    for queue, job in prepared:
        by_queue[queue].append(job)
    new = [q for q in by_queue if q not in known_queues]
    steps: list[Step] = [Cmd(("SADD", keys.queues, *new))] if new else []
    answers: list[str | None] = [None] * len(steps)
    for q, jobs in by_queue.items():
        qk = keys.queue(q)
        lanes = calls.register_lanes(qk, jobs)
        if lanes is not None:  # before the jobs: a worker learns a lane before its jobs
            steps.append(lanes)
            answers.append(None)
        plain = [j for j in jobs if j.debounce is None]
        if plain:
            steps.append(calls.emit(qk, plain))
            answers.append(None)
        for j in jobs:
            if j.debounce is not None:
                steps.append(debounce.emit_call(qk, *j.debounce, j))
                answers.append(j.id)
    if replica_wait is not None:  # on the same connection, right after the writes
        steps.append(replica_wait.emit_step([job.id for _, job in prepared]))
        answers.append(None)
    return EmitBatch(known_queues, new, [job.id for _, job in prepared], steps, answers)


def write(conn: Connection, batch: EmitBatch, what: str) -> list[str]:
    """Write ``batch`` in one round trip; its job ids, or a :class:`RemqError` naming the
    fix when Redis does not answer (``what`` names the emit in it)."""
    try:
        return batch.ids_from(run_many(conn.sync, batch.steps, conn.line))
    except redis.exceptions.RedisError as exc:
        error = unreachable(exc, what, conn)
        if error is None:
            raise
        raise error from exc


async def awrite(conn: Connection, batch: EmitBatch, what: str) -> list[str]:
    """Async twin of :func:`write`."""
    try:
        return batch.ids_from(await arun_many(conn.aio, batch.steps, conn.aline))
    except redis.exceptions.RedisError as exc:
        error = unreachable(exc, what, conn)
        if error is None:
            raise
        raise error from exc


def unreachable(exc: Exception, what: str, conn: Connection) -> RemqError | None:
    """A library error naming the fix for Redis not answering an emit (still a redis-py
    ConnectionError / TimeoutError); ``None`` for any other error (raised as it is)."""
    if isinstance(exc, RemqError):
        return None
    if isinstance(exc, redis.exceptions.TimeoutError):
        return RedisTimeout(
            f"emit ({what}): Redis at {conn!r} did not answer in time ({exc}). The job may or "
            "may not be written: emit again with the same options['id'] to be sure (a live "
            "job is never enqueued twice). Is Redis frozen or overloaded? The wait is the "
            "socket timeout (REMQ['SOCKET_TIMEOUT'], or ?socket_timeout= in the URL).")
    if isinstance(exc, redis.exceptions.ConnectionError):
        return RedisUnavailable(
            f"emit ({what}): cannot reach Redis at {conn!r} ({exc}). Is it running, and is "
            "the URL right (REMQ['REDIS_URL'])? If the connection broke mid-call the job may "
            "be written: emit again with the same options['id'] to be sure.")
    return None


def extra_items(extra: Mapping[str, str]) -> list[str]:
    """``prepare``'s ``extra`` as record items, checked (names, and str values)."""
    check_extra_fields(extra, "emit: extra")
    bad = [k for k, v in extra.items() if not isinstance(v, str)]
    if bad:
        raise InvalidOptions(f"emit: extra: the values must be strings, not those of {bad}")
    return [x for kv in extra.items() for x in kv]


@dataclass(frozen=True)
class EmitBatch:
    """Prepared jobs and the steps that write them; reads the ids back from the replies."""

    known_queues: set[str]  # the manager's; the new queues join it once written
    new_queues: list[str]
    ids: list[str]
    steps: list[Step]
    answers: list[str | None]  # per step: the trailing-debounced job it answers for

    def ids_from(self, replies: Sequence[Any]) -> list[str]:
        """Job ids in input order; a merged trailing emit answers with the pending job's id."""
        self.known_queues.update(self.new_queues)
        merged = {job_id: reply for job_id, reply in zip(self.answers, replies, strict=True)
                  if job_id is not None and reply != job_id}
        return [merged.get(i, i) for i in self.ids] if merged else self.ids
