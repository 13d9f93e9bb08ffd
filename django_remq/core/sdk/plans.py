"""The Sdk's operations, each written once as a plan (see :mod:`.plan`).

:class:`~.sdk.Sdk` runs a plan with the sync client (``get_job``) or the asyncio
client of the running loop (``aget_job``); nothing else differs. State changes are
the ``lua/admin_*.lua`` scripts, so each is atomic; listing and counting read the
per-status indexes (``keys.QueueKeys.status``), never SCAN.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from ..errors import CorruptRecord, InvalidJobState, InvalidOptions, MalformedMessage
from ..store.connection import Connection, RedisLike
from ..store.keys import DLQ_NAME, Keys, QueueKeys, validate_dlq_name, validate_queue_name
from ..store.ops import Retention
from ..store.records import decode
from ..store.scripts import Cmd
from ..types import (
    AdminJobData,
    CronSchedule,
    DlqEntry,
    FinishedCounts,
    JobStatus,
    QueueInfo,
    TaskStats,
    WorkerInfo,
)
from . import ops as ac
from .ops import Change, ListedJob
from .plan import Plan, adrive, drive

log = logging.getLogger("django_remq.sdk")

T = TypeVar("T")
MAX_LIMIT = 1000
#: A search looks at this many jobs of each queue listed, newest first (``search_jobs``
#: goes on from where it stopped: ``JobSearch.older``).
SEARCH_WINDOW = 4_000
#: Cross-queue pages with offset + limit up to this merge the queues' heads directly;
#: deeper pages bisect on the index score first.
SHALLOW = 1000
PROBES = 16
#: A DLQ entry id as the Sdk gives it out: the queue, then the id in its stream.
DLQ_ENTRY_ID = re.compile(r"^(?P<queue>[^\s{}:]+):(?P<sid>\d+-\d+)$")
_ALLOWED = {
    "retry": "only failed or cancelled jobs can be retried",
    "cancel": "completed and failed jobs have nothing left to cancel",
    "pause": "only waiting or delayed jobs can be paused",
    "resume": "only paused jobs can be resumed",
}


@dataclass(frozen=True)
class JobSearch:
    """A page of search results. ``older`` is set when the search stopped at its window
    (``SEARCH_WINDOW`` jobs per queue) before finding the page: pass it as ``before=`` to
    search the older jobs."""

    jobs: list[AdminJobData]
    older: float | None


class SdkPlans:
    """Connection, key names and the plans of every operation (public API: ``Sdk``)."""

    def __init__(self, db: RedisLike | Connection, prefix: str = "remq", *,
                 dlq_key: str | None = None, retention: Retention | None = None,
                 cluster: bool = False) -> None:
        self.conn = db if isinstance(db, Connection) else Connection(db, cluster=cluster)
        self.keys = Keys(prefix)
        try:  # each queue's DLQ stream name (processor.dlq.stream_key)
            self.dlq_key = validate_dlq_name(dlq_key or DLQ_NAME)
        except ValueError as exc:
            raise InvalidOptions(f"dlq_key: {exc}") from None
        self.retention = retention or Retention()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.conn!r}, prefix={self.keys.prefix!r})"

    def _run(self, plan: Plan[T]) -> T:
        return drive(self.conn.sync, plan)

    async def _arun(self, plan: Plan[T]) -> T:
        return await adrive(self.conn.aio, plan)

    def _qk(self, queue: str) -> QueueKeys:
        return self.keys.queue(validate_queue_name(queue))

    def _dlq(self, queue: str) -> str:
        return self._qk(queue).dlq(self.dlq_key)

    def _job(self, job_id: str, queue: str) -> QueueKeys:
        """The queue's keys, once both names are known to be usable."""
        if not isinstance(job_id, str) or not job_id:
            raise InvalidOptions(f"job id must be a non-empty string, got {job_id!r}")
        return self._qk(queue)

    # -- jobs -------------------------------------------------------------------------

    def _get_job(self, job_id: str, queue: str) -> Plan[AdminJobData | None]:
        [[(fields, logs)]] = yield [ac.read(self._job(job_id, queue), [job_id], with_logs=True)]
        return _decode(fields, logs, queue) if fields else None

    def _change(self, op: str, job_id: str, queue: str, call: Any) -> Plan[Change]:
        [change] = yield [call]
        if change.code == "state":
            raise InvalidJobState(f"cannot {op} job {job_id} in queue {queue!r}: it is "
                                  f"{change.before} ({_ALLOWED[op]})")
        return change  # type: ignore[no-any-return]

    def _lanes(self, qk: QueueKeys) -> Plan[list[int]]:
        """The queue's lanes, for a script that may move a job's stream entry (the
        registry only grows, so a job's lane is in it)."""
        [lanes] = yield [ac.lanes(qk)]
        return lanes  # type: ignore[no-any-return]

    def _job_op(self, op: str, job_id: str, queue: str) -> Plan[AdminJobData | None]:
        qk = self._job(job_id, queue)
        lanes = yield from self._lanes(qk)
        call = {"retry": ac.retry, "pause": ac.pause, "resume": ac.resume}[op](qk, job_id, lanes)
        change = yield from self._change(op, job_id, queue, call)
        return None if change.code == "missing" else _decode(change.fields, None, queue)

    def _cancel_job(self, job_id: str, queue: str) -> Plan[bool]:
        keep = self.retention.failed_max_age_ms
        qk = self._job(job_id, queue)
        lanes = yield from self._lanes(qk)
        call = ac.cancel(qk, job_id, -1 if keep is None else keep, lanes)
        change = yield from self._change("cancel", job_id, queue, call)
        if change.code == "requested":
            log.info("job %s in %r is running: cancellation requested", job_id, queue)
        return change.code != "missing"

    def _delete_job(self, job_id: str, queue: str) -> Plan[bool]:
        qk = self._job(job_id, queue)
        lanes = yield from self._lanes(qk)
        [change] = yield [ac.delete(qk, job_id, lanes)]
        return change.code == "ok"  # type: ignore[no-any-return]

    # -- listing ----------------------------------------------------------------------

    def _list_jobs(self, queue: str | None = None, status: str | None = None, limit: int = 100,
                   offset: int = 0, search: str | None = None) -> Plan[list[AdminJobData]]:
        statuses = _statuses(status)
        _check_page(limit, offset)
        if queue is not None and not search:
            [page] = yield [ac.list_page(self._qk(queue), statuses, offset, limit)]
            return _decode_entries(page.entries, queue)
        queues = [queue] if queue is not None else (yield [ac.queue_names(self.keys)])[0]
        qks = [self._qk(q) for q in queues]
        if not qks:
            return []
        if search:
            found = yield from self._search(qks, queues, statuses, search, offset, limit, None)
            return found.jobs
        picked = yield from _merged_page(queues, qks, statuses, offset, limit)
        return (yield from self._records(picked))

    def _search_jobs(self, search: str, queue: str | None = None, status: str | None = None,
                     limit: int = 100, offset: int = 0, before: float | None = None
                     ) -> Plan[JobSearch]:
        statuses = _statuses(status)
        _check_page(limit, offset)
        if not isinstance(search, str) or not search:
            raise InvalidOptions(f"search must be a non-empty str, got {search!r}")
        if before is not None and (isinstance(before, bool)
                                   or not isinstance(before, int | float) or before != before):
            raise InvalidOptions(f"before must be a score (ms) from JobSearch.older, "
                                 f"got {before!r}")
        queues = [queue] if queue is not None else (yield [ac.queue_names(self.keys)])[0]
        qks = [self._qk(q) for q in queues]
        if not qks:
            return JobSearch([], None)
        return (yield from self._search(qks, queues, statuses, search, offset, limit, before))

    def _search(self, qks: Sequence[QueueKeys], queues: Sequence[str], statuses: Sequence[str],
                search: str, offset: int, limit: int, before: float | None
                ) -> Plan[JobSearch]:
        """One window per queue; only matches above the highest cut are certain to be the
        newest (below it some queue was not searched), so the page is taken from those and
        the next search starts at that cut."""
        n = offset + limit
        found = yield [ac.list_search(qk, statuses, search, SEARCH_WINDOW, n, before)
                       for qk in qks]
        cuts = [f.cut for f in found if f.cut is not None]
        cut = max(cuts) if cuts else None
        kept = [[e for e in f.entries if cut is None or e.score > cut] for f in found]
        picked = _merge(queues, kept)[offset:n]
        older = None
        if cut is not None:  # a window of jobs sharing one ms: step past it, not forever
            older = cut if before is None or cut < before else before - 1
        return JobSearch((yield from self._records(picked)), older)

    def _records(self, picked: list[tuple[str, ListedJob]]) -> Plan[list[AdminJobData]]:
        """Records of the picked (queue, entry) pairs, in order: one call per queue."""
        by_queue: dict[str, list[str]] = {}
        for q, e in picked:
            by_queue.setdefault(q, []).append(e.id)
        replies = yield [ac.read(self._qk(q), ids) for q, ids in by_queue.items()]
        found: dict[tuple[str, str], dict[str, str]] = {}
        for (q, ids), records in zip(by_queue.items(), replies, strict=True):
            for job_id, (fields, _) in zip(ids, records, strict=True):
                found[(q, job_id)] = fields
        entries = [(q, ListedJob(e.id, e.score, found[(q, e.id)])) for q, e in picked]
        return [job for q, e in entries if (job := _decode_entry(e, q)) is not None]

    # -- queues -----------------------------------------------------------------------

    def _get_queue_stats(self, queue: str) -> Plan[TaskStats]:
        [(_, counts), dlq] = yield [ac.stats(self._qk(queue)), ac.dlq_length(self._dlq(queue))]
        return TaskStats(queue=queue, dlq=dlq, **counts)

    def _get_queues(self) -> Plan[list[str]]:
        [names] = yield [ac.queue_names(self.keys)]
        return names  # type: ignore[no-any-return]

    def _get_queues_info(self) -> Plan[list[QueueInfo]]:
        [names] = yield [ac.queue_names(self.keys)]
        replies = yield [*(ac.stats(self._qk(q)) for q in names),
                         *(ac.dlq_length(self._dlq(q)) for q in names)]
        n = len(names)
        return [QueueInfo(name=q, paused=paused, stats=TaskStats(queue=q, dlq=dlq, **counts))
                for q, (paused, counts), dlq in zip(names, replies[:n], replies[n:],
                                                    strict=True)]

    def _pause_queue(self, queue: str, paused: bool) -> Plan[None]:
        key = self._qk(queue).paused
        yield [Cmd(("SET", key, "1") if paused else ("DEL", key))]

    def _is_queue_paused(self, queue: str) -> Plan[bool]:
        [flag] = yield [Cmd(("EXISTS", self._qk(queue).paused), lambda r: bool(int(r)))]
        return flag  # type: ignore[no-any-return]

    def _queue_names(self, queues: Sequence[str] | None) -> Plan[list[str]]:
        if queues is not None:
            return [validate_queue_name(q) for q in queues]
        [names] = yield [ac.queue_names(self.keys)]
        return names  # type: ignore[no-any-return]

    def _get_finished_counts(self, queues: Sequence[str] | None,
                             windows_ms: Sequence[int]) -> Plan[list[FinishedCounts]]:
        for w in windows_ms:
            if not isinstance(w, int) or isinstance(w, bool) or w <= 0:
                raise InvalidOptions(f"windows_ms must be ints > 0 (ms), got {w!r}")
        names = yield from self._queue_names(queues)
        now = _now_ms()
        asks = [(q, w, s) for q in names for w in windows_ms for s in JobStatus if s.final]
        if not asks:
            return []
        counts = yield [ac.finished_since(self._qk(q), s, now - w) for q, w, s in asks]
        found: dict[tuple[str, int], dict[str, int]] = {}
        for (q, w, s), n in zip(asks, counts, strict=True):
            found.setdefault((q, w), {})[s] = n
        return [FinishedCounts(queue=q, window_ms=w, **by_status)
                for (q, w), by_status in found.items()]

    def _get_dlq_length(self) -> Plan[int]:
        names = yield from self._queue_names(None)
        lengths = yield [ac.dlq_length(self._dlq(q)) for q in names]
        return sum(lengths)

    def _list_cron(self, queues: Sequence[str] | None) -> Plan[list[CronSchedule]]:
        names = yield from self._queue_names(queues)
        if not names:
            return []
        replies = yield [step for q in names
                         for step in (ac.cron_schedule(self._qk(q)), ac.cron_runs(self._qk(q)))]
        out = []
        for i, q in enumerate(names):
            schedule, runs = replies[2 * i], replies[2 * i + 1]
            out += [CronSchedule(queue=q, event=event, next_run=int(score),
                                 runs=runs.get(event, 0)) for event, score in schedule]
        return sorted(out, key=lambda c: (c.next_run, c.queue, c.event))

    # -- bulk ---------------------------------------------------------------------------

    def _bulk(self, queue: str, action: str, status: str, max_score_ms: int,
              batch_size: int) -> Plan[int]:
        if not isinstance(batch_size, int) or not 1 <= batch_size <= 10_000:
            raise InvalidOptions(f"batch_size must be an int in 1..10000, got {batch_size!r}")
        qk, done = self._qk(queue), 0
        lanes = yield from self._lanes(qk)
        while True:
            [n] = yield [ac.bulk(qk, action, status, max_score_ms, batch_size,  # type: ignore[arg-type]
                                 lanes)]
            done += int(n)
            if n == 0:
                log.info("%s: %d %s jobs in %r", action, done, status, queue)
                return done

    def _retry_all_failed(self, queue: str, batch_size: int = 1000) -> Plan[int]:
        return (yield from self._bulk(queue, "retry", "failed", _now_ms(), batch_size))

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
        cutoff = _now_ms() - int(age)
        return (yield from self._bulk(queue, "delete", status, cutoff, batch_size))

    # -- workers and the DLQ --------------------------------------------------------------

    def _get_workers(self) -> Plan[list[WorkerInfo]]:
        [ids] = yield [ac.worker_ids(self.keys)]
        infos = yield [ac.worker_info(self.keys, i) for i in ids]
        return [w for w in infos if w is not None]

    def _list_dlq(self, limit: int = 100, offset: int = 0,
                  queue: str | None = None) -> Plan[list[DlqEntry]]:
        _check_page(limit, offset)
        names = yield from self._queue_names(None if queue is None else [queue])
        pages = yield [ac.dlq_range(self._dlq(q), q, offset + limit) for q in names]
        return _newest(pages)[offset:offset + limit]

    def _dlq_page(self, limit: int, offset: int) -> Plan[tuple[int, list[DlqEntry]]]:
        """The total and one page across queues, in two round trips."""
        _check_page(limit, offset)
        names = yield from self._queue_names(None)
        replies = yield [*(ac.dlq_length(self._dlq(q)) for q in names),
                         *(ac.dlq_range(self._dlq(q), q, offset + limit) for q in names)]
        n = len(names)
        return sum(replies[:n]), _newest(replies[n:])[offset:offset + limit]

    def _requeue_dlq(self, entry_id: str) -> Plan[AdminJobData | None]:
        queue, sid = _split_entry_id(entry_id)
        [found] = yield [ac.dlq_get(self._dlq(queue), queue, sid)]
        if not found:
            return None
        entry, record = found[0]
        if not entry.id or not entry.queue:
            raise MalformedMessage(f"DLQ entry {entry_id} names no job id or queue (fields "
                                   f"id={entry.id!r}, queue={entry.queue!r}); delete it")
        qk = self._qk(entry.queue)
        lanes = yield from self._lanes(qk)
        [change, _] = yield [ac.restore(qk, entry.id, _job_fields(entry, record), lanes),
                             ac.dlq_delete(self._dlq(queue), sid)]
        return _decode(change.fields, None, entry.queue)

    def _delete_dlq(self, entry_id: str) -> Plan[bool]:
        queue, sid = _split_entry_id(entry_id)
        [deleted] = yield [ac.dlq_delete(self._dlq(queue), sid)]
        return deleted  # type: ignore[no-any-return]


def _split_entry_id(entry_id: str) -> tuple[str, str]:
    match = DLQ_ENTRY_ID.match(entry_id) if isinstance(entry_id, str) else None
    if match is None:
        raise InvalidOptions(f"DLQ entry id must be '<queue>:<stream id>', e.g. "
                             f"'default:1700000000000-0' (see list_dlq / remq dlq), "
                             f"got {entry_id!r}")
    return match["queue"], match["sid"]


def _newest(pages: Sequence[list[ac.Letter]]) -> list[DlqEntry]:
    """Queues' DLQ pages as one list, newest first (by stream id; ties by queue)."""
    entries = [e for page in pages for e, _ in page]

    def when(e: DlqEntry) -> tuple[int, int, str]:
        ms, seq = e.entry_id.rsplit(":", 1)[1].split("-")
        return -int(ms), -int(seq), e.entry_id

    return sorted(entries, key=when)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _statuses(status: str | None) -> tuple[str, ...]:
    if status is None:
        return tuple(JobStatus)
    if status not in tuple(JobStatus):
        raise InvalidOptions(f"unknown status {status!r}; one of {', '.join(JobStatus)}")
    return (status,)


def _check_page(limit: int, offset: int) -> None:
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidOptions(f"limit must be an int in 1..{MAX_LIMIT}, got {limit!r}")
    if not isinstance(offset, int) or offset < 0:
        raise InvalidOptions(f"offset must be an int >= 0, got {offset!r}")


def _merge(queues: Sequence[str], pages: Sequence[list[ListedJob]]) -> list[tuple[str, ListedJob]]:
    """Queues' pages as one list, newest first (ties: queue order, then each page's)."""
    tagged = [(-e.score, qi, i, q, e) for qi, (q, page) in enumerate(zip(queues, pages,
                                                                         strict=True))
              for i, e in enumerate(page)]
    tagged.sort(key=lambda t: t[:3])
    return [(t[3], t[4]) for t in tagged]


def _merged_page(queues: Sequence[str], qks: Sequence[QueueKeys], statuses: Sequence[str],
                 offset: int, limit: int) -> Plan[list[tuple[str, ListedJob]]]:
    """One page across queues. Deep pages first find the offset-th job's score by a
    16-way search over ZCOUNTs (~12 round trips for ms scores), then read from there."""
    upper, skip = "+inf", offset
    if offset + limit > SHALLOW:
        counts = yield [ac.list_count(qk, statuses, []) for qk in qks]
        lows = [c.low for c in counts if c.low is not None]
        highs = [c.high for c in counts if c.high is not None]
        if sum(c.total for c in counts) <= offset or not lows:
            return []
        a, b = int(min(lows)) - 1, int(max(highs)) + 1
        while b - a > 1:  # invariant: more than `offset` jobs above a, at most above b
            probes = sorted({a + (b - a) * i // PROBES for i in range(1, PROBES)} - {a, b})
            replies = yield [ac.list_count(qk, statuses, probes) for qk in qks]
            above = [sum(c.above[i] for c in replies) for i in range(len(probes))]
            for probe, n in zip(probes, above, strict=True):
                if n <= offset:
                    b = probe
                    break
                a = probe
        upper = str(b)
        [*replies] = yield [ac.list_count(qk, statuses, [b]) for qk in qks]
        skip = offset - sum(c.above[0] for c in replies)
    pages = yield [ac.list_upto(qk, statuses, upper, skip + limit) for qk in qks]
    return _merge(queues, [p.entries for p in pages])[skip:skip + limit]


def _decode(fields: dict[str, str], logs: list[str] | None, queue: str) -> AdminJobData:
    return decode(fields, logs, queue)


def _decode_entry(entry: ListedJob, queue: str) -> AdminJobData | None:
    if not entry.fields:
        return None  # the record expired; its index entry goes with the next trim
    try:
        return _decode(entry.fields, None, queue)
    except CorruptRecord as exc:
        log.warning("%s (left out of the listing)", exc)
        return None


def _decode_entries(entries: Sequence[ListedJob], queue: str) -> list[AdminJobData]:
    return [job for e in entries if (job := _decode_entry(e, queue)) is not None]


def _job_fields(entry: DlqEntry, record: dict[str, str]) -> dict[str, str]:
    """The DLQ's copy of a record as field/value strings, for a record that has expired."""
    fields = dict(record)
    fields.update(id=entry.id, queue=entry.queue)
    fields.setdefault("name", entry.name)
    return fields
