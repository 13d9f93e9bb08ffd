"""The Sdk's plans on jobs: read one, change one (retry, cancel, pause, resume, delete),
and the bulk retry and delete."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from ..errors import InvalidJobState, InvalidOptions
from ..store.records import decode
from ..store.scripts import Call
from ..types import AdminJobData, JobStatus
from . import admin_calls as ac
from .admin_calls import Change
from .base import SdkBase, check_job_id, now_ms
from .plan import Plan

log = logging.getLogger("django_remq.sdk")

_ALLOWED = {
    "retry": "only failed or cancelled jobs can be retried",
    "cancel": "completed and failed jobs have nothing left to cancel",
    "pause": "only waiting or delayed jobs can be paused",
    "resume": "only paused jobs can be resumed",
    "run_now": "only delayed jobs can be run now (resume a paused one)",
}


class JobPlans(SdkBase):
    """One job at a time, and the bulk operations on a status of a queue."""

    def _get_job(self, job_id: str, queue: str) -> Plan[AdminJobData | None]:
        [[(fields, logs)]] = yield [ac.read(self._job(job_id, queue), [job_id], with_logs=True)]
        return decode(fields, logs, queue) if fields else None

    def _find_job(self, job_id: str) -> Plan[list[AdminJobData]]:
        """Read the id in every queue of the registry (an indexed set, no SCAN): one read
        per queue, all in one round trip."""
        check_job_id(job_id)
        names = yield from self._queue_names(None)
        if not names:
            return []
        replies = yield [ac.read(self._job(job_id, q), [job_id], with_logs=True) for q in names]
        return [decode(fields, logs, q)
                for q, [(fields, logs)] in zip(names, replies, strict=True) if fields]

    def _job_op(self, op: str, job_id: str, queue: str) -> Plan[AdminJobData | None]:
        qk = self._job(job_id, queue)
        dlq = self._dlq(queue)  # a retried job's dead letter goes with it

        def build(lanes: Sequence[int]) -> Call[Change]:
            if op == "retry":
                return ac.retry(qk, job_id, lanes, dlq)
            return {"pause": ac.pause, "resume": ac.resume,
                    "run_now": ac.run_now}[op](qk, job_id, lanes)

        change = yield from self._move(qk, build)
        _allowed(op, job_id, queue, change)
        return None if change.code == "missing" else decode(change.fields, None, queue)

    def _cancel_job(self, job_id: str, queue: str) -> Plan[bool]:
        keep = self.retention.failed_max_age_ms
        qk = self._job(job_id, queue)
        change = yield from self._move(
            qk, lambda lanes: ac.cancel(qk, job_id, -1 if keep is None else keep, lanes))
        _allowed("cancel", job_id, queue, change)
        if change.code == "requested":
            log.info("job %s in %r is running: cancellation requested", job_id, queue)
        return change.code != "missing"

    def _delete_job(self, job_id: str, queue: str) -> Plan[bool]:
        qk = self._job(job_id, queue)
        change = yield from self._move(qk, lambda lanes: ac.delete(qk, job_id, lanes))
        return change.code == "ok"

    # -- bulk ---------------------------------------------------------------------------

    def _bulk(self, queue: str, action: str, status: str, max_score_ms: int,
              batch_size: int) -> Plan[int]:
        if not isinstance(batch_size, int) or not 1 <= batch_size <= 10_000:
            raise InvalidOptions(f"batch_size must be an int in 1..10000, got {batch_size!r}")
        qk, done = self._qk(queue), 0
        [lanes] = yield [ac.lanes(qk)]  # a batch may move jobs of any lane
        while True:
            [n] = yield [ac.bulk(qk, action, status, max_score_ms, batch_size,  # type: ignore[arg-type]
                                 lanes, self._dlq(queue))]
            done += int(n)
            if n == 0:
                log.info("%s: %d %s jobs in %r", action, done, status, queue)
                return done

    def _retry_all_failed(self, queue: str, batch_size: int = 1000) -> Plan[int]:
        return (yield from self._bulk(queue, "retry", "failed", now_ms(), batch_size))

    def _delete_completed_older_than(self, queue: str, older_than: timedelta | int,
                                     status: str = "completed",
                                     batch_size: int = 1000) -> Plan[int]:
        final = [s for s in JobStatus if s.final]
        if status not in final:
            raise InvalidOptions(f"status must be one of {', '.join(final)} "
                                 f"(finished jobs), got {status!r}")
        age = older_than if isinstance(older_than, int) else older_than.total_seconds() * 1000
        if isinstance(age, bool) or age < 0:
            raise InvalidOptions(f"older_than must be a timedelta or ms >= 0, got {older_than!r}")
        cutoff = now_ms() - int(age)
        return (yield from self._bulk(queue, "delete", status, cutoff, batch_size))


def _allowed(op: str, job_id: str, queue: str, change: Change) -> None:
    if change.code == "state":
        raise InvalidJobState(f"cannot {op} job {job_id} in queue {queue!r}: it is "
                              f"{change.before} ({_ALLOWED[op]})")
