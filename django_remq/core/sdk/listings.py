"""The Sdk's job listings: one queue's page, pages merged across queues (deep ones by
bisecting on the index score), and the windowed search by id or name; and the bounded
reads the admin pages make (:mod:`.bounded`): listing rows, a job's preview, one value
whole."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.exceptions
from redis.client import NEVER_DECODE

from ..errors import CorruptRecord, InvalidOptions
from ..store.keys import QueueKeys
from ..store.records import decode
from ..types import AdminJobData, JobStatus
from . import admin_calls as ac
from . import bounded
from .admin_calls import ListedJob
from .base import SdkBase, check_job_id, check_page
from .bounded import PREVIEW_CAP, JobPreview
from .dead_letters import DLQ_ENTRY_ID
from .plan import Plan

log = logging.getLogger("django_remq.sdk")

#: A search looks at this many jobs of each queue listed, newest first (``search_jobs``
#: goes on from where it stopped: ``JobSearch.older``).
SEARCH_WINDOW = 4_000
#: Cross-queue pages with offset + limit up to this merge the queues' heads directly;
#: deeper pages bisect on the index score first.
SHALLOW = 1000
PROBES = 16
#: The values :meth:`ListingPlans.get_job_value` hands out whole.
VALUE_FIELDS = ("data", "result", "progress", "errors")


@dataclass(frozen=True)
class CorruptJob:
    """A job of a listing whose record does not read (``error`` says which field and why):
    left out of the page, not dropped silently -- open it with ``get_job`` (which raises the
    same error) or delete it."""

    id: str
    queue: str
    error: CorruptRecord


class JobList(list[AdminJobData]):
    """A page of jobs (a list). One whose record does not read costs the page nothing: it
    is left out, and named in ``corrupt``."""

    def __init__(self, jobs: Iterable[AdminJobData] = (),
                 corrupt: Iterable[CorruptJob] = ()) -> None:
        super().__init__(jobs)
        self.corrupt: list[CorruptJob] = list(corrupt)


@dataclass(frozen=True)
class JobSearch:
    """A page of search results. ``older`` is set when the search stopped at its window
    (``SEARCH_WINDOW`` jobs per queue) before finding the page: pass it as ``before=`` to
    search the older jobs. ``jobs.corrupt``: matches whose records do not read."""

    jobs: JobList
    older: float | None


class ListingPlans(SdkBase):
    """Pages of jobs, newest first, from the per-status indexes. The public methods here
    are the bounded reads of the admin pages (the listings' are in :mod:`.client`)."""

    def list_job_rows(self, queue: str | None = None, status: str | None = None,
                      limit: int = 100, offset: int = 0, *, oldest: bool = False) -> JobList:
        """:meth:`list_jobs` reading only what a listing shows: no ``data`` or ``result``
        (``None``), progress and errors up to ``bounded.ROW_CAP`` bytes each (past it, the
        percent and the latest error), so a page costs the same with 20 MB jobs in it.
        ``oldest``: oldest first, for one queue and one status (the order its index
        keeps); refused otherwise."""
        return self._run(self._list_jobs(queue, status, limit, offset, rows=True,
                                         oldest=oldest))

    async def alist_job_rows(self, queue: str | None = None, status: str | None = None,
                             limit: int = 100, offset: int = 0, *, oldest: bool = False
                             ) -> JobList:
        return await self._arun(self._list_jobs(queue, status, limit, offset, rows=True,
                                                oldest=oldest))

    def search_job_rows(self, search: str, queue: str | None = None,
                        status: str | None = None, limit: int = 100, offset: int = 0,
                        before: float | None = None, *, in_data: bool = False,
                        event: str | None = None) -> JobSearch:
        """:meth:`search_jobs` with rows as :meth:`list_job_rows` reads them; ``in_data``
        looks inside each job's data too (values up to 64 KB), ``event`` keeps that
        event's jobs only (then ``search`` may be empty). The same window bounds both."""
        return self._run(self._search_jobs(search, queue, status, limit, offset, before,
                                           rows=True, in_data=in_data, event=event))

    async def asearch_job_rows(self, search: str, queue: str | None = None,
                               status: str | None = None, limit: int = 100, offset: int = 0,
                               before: float | None = None, *, in_data: bool = False,
                               event: str | None = None) -> JobSearch:
        return await self._arun(self._search_jobs(search, queue, status, limit, offset,
                                                  before, rows=True, in_data=in_data,
                                                  event=event))

    def get_job_preview(self, job_id: str, queue: str, cap: int = PREVIEW_CAP
                        ) -> JobPreview | None:
        """:meth:`get_job` with every value over ``cap`` bytes cut in Redis (its size and
        first bytes in ``cuts``; :meth:`get_job_value` reads it whole); ``None`` if there
        is no such job."""
        return self._run(self._job_preview(job_id, queue, cap))

    async def aget_job_preview(self, job_id: str, queue: str, cap: int = PREVIEW_CAP
                               ) -> JobPreview | None:
        return await self._arun(self._job_preview(job_id, queue, cap))

    def get_job_value(self, job_id: str, queue: str, name: str) -> bytes | None:
        """One value of a job's record (``data``, ``result``, ``progress`` or ``errors``),
        whole, as the bytes stored (JSON); ``None`` when the job or the value is missing."""
        key = self._value_key(job_id, queue, name)
        try:
            value = cast(Any, self.conn.sync).execute_command("HGET", key, name,
                                                              **{NEVER_DECODE: True})
        except redis.exceptions.ResponseError:  # WRONGTYPE: not a record
            return None
        return value if value is None else bytes(value)

    async def aget_job_value(self, job_id: str, queue: str, name: str) -> bytes | None:
        key = self._value_key(job_id, queue, name)
        try:
            value = await cast(Any, self.conn.aio).execute_command("HGET", key, name,
                                                                   **{NEVER_DECODE: True})
        except redis.exceptions.ResponseError:
            return None
        return value if value is None else bytes(value)

    def _value_key(self, job_id: str, queue: str, name: str) -> str:
        check_job_id(job_id)
        if name not in VALUE_FIELDS:
            raise InvalidOptions(f"value {name!r}: one of {', '.join(VALUE_FIELDS)}")
        return self._qk(queue).job(job_id)

    def _job_preview(self, job_id: str, queue: str, cap: int) -> Plan[JobPreview | None]:
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise InvalidOptions(f"cap must be an int >= 1 (bytes), got {cap!r}")
        check_job_id(job_id)
        [[(fields, logs)]] = yield [bounded.read_preview(self._qk(queue), job_id, cap)]
        if not fields:
            return None
        fields, cuts = bounded.preview(fields)
        sid = fields.get("dlq_entry")
        return JobPreview(decode(fields, logs, queue), cuts,
                          f"{queue}:{sid}" if sid and DLQ_ENTRY_ID.match(f"{queue}:{sid}")
                          else None)

    def _list_jobs(self, queue: str | None = None, status: str | None = None, limit: int = 100,
                   offset: int = 0, search: str | None = None, *, rows: bool = False,
                   oldest: bool = False) -> Plan[JobList]:
        statuses = _statuses(status)
        check_page(limit, offset)
        if oldest and (queue is None or status is None or search or not rows):
            raise InvalidOptions("oldest first needs one queue and one status (the order of "
                                 "its index), and no search")
        if queue is not None and not search:
            qk = self._qk(queue)
            [page] = yield [bounded.rows_page(qk, statuses, offset, limit, oldest) if rows
                            else ac.list_page(qk, statuses, offset, limit)]
            return _decoded(((queue, e) for e in page.entries), rows)
        queues = [queue] if queue is not None else (yield [ac.queue_names(self.keys)])[0]
        qks = [self._qk(q) for q in queues]
        if not qks:
            return JobList()
        if search:
            found = yield from self._search(qks, queues, statuses, search, offset, limit, None,
                                            rows)
            return found.jobs
        picked = yield from _merged_page(queues, qks, statuses, offset, limit)
        return (yield from self._records(picked, rows))

    def _search_jobs(self, search: str, queue: str | None = None, status: str | None = None,
                     limit: int = 100, offset: int = 0, before: float | None = None, *,
                     rows: bool = False, in_data: bool = False, event: str | None = None
                     ) -> Plan[JobSearch]:
        statuses = _statuses(status)
        check_page(limit, offset)
        if event is not None and (not isinstance(event, str) or not event):
            raise InvalidOptions(f"event must be a non-empty str (an event name), got {event!r}")
        if not isinstance(search, str) or not (search or event):
            raise InvalidOptions(f"search must be a non-empty str (or give an event), "
                                 f"got {search!r}")
        if before is not None and (isinstance(before, bool)
                                   or not isinstance(before, int | float) or before != before):
            raise InvalidOptions(f"before must be a score (ms) from JobSearch.older, "
                                 f"got {before!r}")
        queues = [queue] if queue is not None else (yield [ac.queue_names(self.keys)])[0]
        qks = [self._qk(q) for q in queues]
        if not qks:
            return JobSearch(JobList(), None)
        return (yield from self._search(qks, queues, statuses, search, offset, limit, before,
                                        rows, in_data=in_data, event=event or ""))

    def _search(self, qks: Sequence[QueueKeys], queues: Sequence[str], statuses: Sequence[str],
                search: str, offset: int, limit: int, before: float | None, rows: bool = False,
                *, in_data: bool = False, event: str = "") -> Plan[JobSearch]:
        """One window per queue; only matches above the highest cut are certain to be the
        newest (below it some queue was not searched), so the page is taken from those and
        the next search starts at that cut."""
        n = offset + limit
        found = yield [ac.list_search(qk, statuses, search, SEARCH_WINDOW, n, before,
                                      in_data=in_data, event=event) for qk in qks]
        cuts = [f.cut for f in found if f.cut is not None]
        cut = max(cuts) if cuts else None
        kept = [[e for e in f.entries if cut is None or e.score > cut] for f in found]
        picked = _merge(queues, kept)[offset:n]
        older = None
        if cut is not None:  # a window of jobs sharing one ms: step past it, not forever
            older = cut if before is None or cut < before else before - 1
        return JobSearch((yield from self._records(picked, rows)), older)

    def _records(self, picked: list[tuple[str, ListedJob]], rows: bool = False
                 ) -> Plan[JobList]:
        """Records (or rows) of the picked (queue, entry) pairs, in order: one call per
        queue."""
        by_queue: dict[str, list[str]] = {}
        for q, e in picked:
            by_queue.setdefault(q, []).append(e.id)
        read = bounded.read_rows if rows else ac.read
        replies = yield [read(self._qk(q), ids) for q, ids in by_queue.items()]
        found: dict[tuple[str, str], dict[str, str]] = {}
        for (q, ids), records in zip(by_queue.items(), replies, strict=True):
            for job_id, (fields, _) in zip(ids, records, strict=True):
                found[(q, job_id)] = fields
        return _decoded(((q, ListedJob(e.id, e.score, found[(q, e.id)])) for q, e in picked),
                        rows)


def _statuses(status: str | None) -> tuple[str, ...]:
    if status is None:
        return tuple(JobStatus)
    if status not in tuple(JobStatus):
        raise InvalidOptions(f"unknown status {status!r}; one of {', '.join(JobStatus)}")
    return (status,)


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


def _decoded(entries: Iterable[tuple[str, ListedJob]], rows: bool = False) -> JobList:
    """The listed (queue, entry) pairs' jobs, in order; a record that expired meanwhile
    is left out (its index entry goes with the next trim), one that does not read is
    named in ``corrupt``."""
    out = JobList()
    for queue, entry in entries:
        if not entry.fields:
            continue
        try:
            out.append(decode(bounded.row_fields(entry.fields) if rows else entry.fields,
                              None, queue))
        except CorruptRecord as exc:
            log.warning("%s (left out of the listing)", exc)
            out.corrupt.append(CorruptJob(entry.id, queue, exc))
    return out
