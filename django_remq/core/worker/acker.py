"""Acker: applies finished jobs' outcomes in batches, one finish.lua call per queue.

Handlers finish one by one, but a worker acknowledges them together (a
:class:`~.batcher.Batcher`: whatever finished while the previous batch was on the
wire goes in the next one; a batch smaller than ``FILL`` first waits ``linger_ms``
for more, so that at low concurrency one call carries several finishes). If Redis is
away the outcomes are kept and retried: the entries stay pending until then, so a
crash meanwhile only means the tasks run again (at-least-once). With
``wait_replicas`` each batch also waits for the replicas (:mod:`..store.replicas`)
before the jobs are reported finished. One job's bad record costs only that job:
finish.lua turns a record it cannot update into a failed ``corrupt`` one, and should
a call still fail, the batch is split and each outcome applied alone. A job that ends
failed gets its dead letter in the same finish.lua call (:mod:`..policies.dlq`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence

from redis.exceptions import ResponseError

from ..policies.dlq import DeadLetterConfig
from ..store import calls
from ..store.calls import FINISH_CORRUPT, Outcome, Retention
from ..store.connection import Connection
from ..store.keys import Keys
from ..store.replicas import ReplicaWait, confirm
from ..store.scripts import Step, arun_many
from .batcher import Batcher
from .reconnect import REDIS_DOWN, Backoff

log = logging.getLogger("django_remq.acker")

#: a batch this large goes at once (per job, a finish.lua call of 32 costs Redis about
#: half what one of 8 does and a sixth of one alone: bench/scripts.py)
FILL = 32

OnApplied = Callable[[str, Outcome, bool], None]
Item = tuple[str, Outcome]


class Acker:
    def __init__(self, conn: Connection, keys: Keys, retention: Retention,
                 on_applied: OnApplied | None = None, *, dlq: DeadLetterConfig | None = None,
                 replica_wait: ReplicaWait | None = None, linger_ms: int = 0) -> None:
        self.conn = conn
        self.keys = keys
        self.retention = retention
        self.on_applied = on_applied
        #: the worker's DLQ; None: nothing is dead-lettered
        self.dlq = dlq
        #: replicas each batch waits for (``wait_replicas``)
        self.replica_wait = replica_wait
        self._backoff = Backoff()
        self._batcher: Batcher[Item] = Batcher(self._write, retry=self._retry,
                                               linger=linger_ms / 1000, fill=FILL)

    @property
    def pending(self) -> int:
        return self._batcher.pending

    def add(self, queue: str, outcome: Outcome) -> None:
        self._batcher.add((queue, outcome))

    async def _write(self, batch: list[Item]) -> None:
        by_queue: defaultdict[tuple[str, int], list[Outcome]] = defaultdict(list)
        for q, outcome in batch:
            by_queue[q, outcome.lane].append(outcome)
        try:
            await self._finish(list(by_queue.items()))
        except ResponseError as exc:  # a script error: find the one outcome that causes it
            if isinstance(exc, REDIS_DOWN):  # CLUSTERDOWN and the like: retried, not split
                raise
            if len(batch) == 1:
                q, outcome = batch[0]
                log.error("cannot apply the outcome of job %s in %r (%s); its entry stays "
                          "pending and is delivered again", outcome.job_id, q, exc)
                return
            log.warning("finishing %d jobs failed (%s); applying them one by one",
                        len(batch), exc)
            for item in batch:
                await self._write([item])
        self._backoff.reset()

    async def _finish(self, groups: Sequence[tuple[tuple[str, int], list[Outcome]]]) -> None:
        """One finish.lua call per queue and lane (the stream the entries are on)."""
        dlq = None if self.dlq is None else (self.dlq.stream_key, self.dlq.maxlen)
        steps: list[Step] = [calls.finish(self.keys.queue(q), outcomes, self.retention, lane,
                                        dlq=dlq)
                             for (q, lane), outcomes in groups]
        wait = self.replica_wait
        if wait is not None:  # pipelined after the scripts: their connection's writes
            steps.append(wait.step())
        replies = await arun_many(self.conn.aio, steps, self.conn.aline)
        if wait is not None and replies.pop() < wait.replicas:
            n = sum(len(outcomes) for _, outcomes in groups)
            await confirm(self.conn.aio, wait, f"acknowledging {n} finished jobs",
                          Backoff(base=0.5).next, [s.key for s in steps if s.key])
        for ((q, _), outcomes), codes in zip(groups, replies, strict=True):
            for outcome, code in zip(outcomes, codes, strict=True):
                if code == FINISH_CORRUPT:
                    outcome = corrupted(q, outcome)
                if self.on_applied is not None:
                    try:
                        self.on_applied(q, outcome, bool(code))
                    except Exception:  # applied in Redis already: report, don't undo
                        log.exception("after finishing job %s in %r", outcome.job_id, q)

    def _retry(self, batch: Sequence[Item], exc: Exception, failures: int) -> float | None:
        if not isinstance(exc, REDIS_DOWN):
            log.error("dropping %d finished outcomes (%s: %s); their entries stay pending and "
                      "are delivered again", len(batch), type(exc).__name__, exc)
            return None
        delay = self._backoff.next()
        log.warning("cannot acknowledge %d finished jobs (%s); retrying in %.1fs",
                    len(batch), exc, delay)
        return delay

    async def close(self, timeout: float | None = None) -> bool:
        """Wait for buffered outcomes to reach Redis; ``False`` if some could not."""
        return await self._batcher.close(timeout)


def corrupted(queue: str, outcome: Outcome) -> Outcome:
    """What finish.lua made of an outcome whose record it could not update: the job
    failed as ``corrupt`` (its record rebuilt, the raw value kept in ``data``; its dead
    letter, reason ``corrupt``, written by the same call)."""
    log.error("job %s in %r: its record was corrupt; it is now failed (reason 'corrupt')",
              outcome.job_id, queue)
    return Outcome(outcome.entry_id, outcome.job_id, "failed")
