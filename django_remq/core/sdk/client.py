"""Sdk: every admin operation over Redis (the original remq's ``Sdk``), fast at any size.

Every method has an ``a``-prefixed async twin (``get_job`` / ``aget_job``); both run
the same plan (:mod:`.jobs`, :mod:`.listings`, :mod:`.queues`, :mod:`.dead_letters`),
one with the sync client, one with the asyncio client of the running loop. Costs: a
job O(1); a page of a listing O(log n + page) from the per-status indexes; queue stats
O(1) per status.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from ..types import (
    AdminJobData,
    CronSchedule,
    DlqEntry,
    FinishedCounts,
    TaskStats,
    WorkerInfo,
)
from .dead_letters import DeadLetterPlans
from .jobs import JobPlans
from .listings import JobList, JobSearch, ListingPlans
from .queues import QueueList, QueuePlans


class Sdk(JobPlans, ListingPlans, QueuePlans, DeadLetterPlans):
    """Admin access to the queues of one key prefix.

    ``Sdk(db, prefix="remq", dlq_key=None, retention=None, cluster=False)``: ``db`` is a
    URL or a (sync or asyncio) Redis client; ``dlq_key`` the name of each queue's
    dead-letter stream, ``<prefix>:{<queue>}:<dlq_key>`` (``processor.dlq.stream_key``;
    default ``dlq``); ``retention`` (:class:`~..store.calls.Retention`) how long jobs
    cancelled here are kept; ``cluster=True``: ``db`` is any node's URL of a Redis Cluster.
    ``close()`` (or ``with Sdk(...) as sdk:``, ``async with``) closes the clients it made.
    """

    # -- one job ------------------------------------------------------------------

    def get_job(self, job_id: str, queue: str) -> AdminJobData | None:
        """The job with its logs and errors, or ``None`` if there is no such job."""
        return self._run(self._get_job(job_id, queue))

    async def aget_job(self, job_id: str, queue: str) -> AdminJobData | None:
        return await self._arun(self._get_job(job_id, queue))

    def find_job(self, job_id: str) -> list[AdminJobData]:
        """The job with this id in each queue it is in (usually one; ids are unique per
        queue only), with its logs: for when the queue is not known. Costs one read per
        queue of the registry, in one round trip."""
        return self._run(self._find_job(job_id))

    async def afind_job(self, job_id: str) -> list[AdminJobData]:
        return await self._arun(self._find_job(job_id))

    def retry_job(self, job_id: str, queue: str) -> AdminJobData | None:
        """Run a failed or cancelled job again, for real: back in the stream, with its logs,
        errors and attempt count kept (its automatic retries are not restored: one run).
        Returns the updated job, ``None`` if there is no such job; raises
        :class:`InvalidJobState` for any other status."""
        return self._run(self._job_op("retry", job_id, queue))

    async def aretry_job(self, job_id: str, queue: str) -> AdminJobData | None:
        return await self._arun(self._job_op("retry", job_id, queue))

    def cancel_job(self, job_id: str, queue: str) -> bool:
        """Cancel a job. ``False``: no such job. ``True``: a waiting, delayed or paused job is
        now ``cancelled`` and will not run (already cancelled: ``True`` too). For a *running*
        job ``True`` means cancellation was requested (``AdminJobData.cancel_requested``):
        its worker sees the request at its next heartbeat (within ``claim_idle_ms / 3``),
        sets ``ctx.cancelled``, cancels an async handler (``CancelledError``) or abandons a
        sync one, and the job ends ``cancelled``. Until then it stays ``processing``.
        Raises :class:`InvalidJobState` for a completed or failed job."""
        return self._run(self._cancel_job(job_id, queue))

    async def acancel_job(self, job_id: str, queue: str) -> bool:
        return await self._arun(self._cancel_job(job_id, queue))

    def delete_job(self, job_id: str, queue: str) -> bool:
        """Remove the job everywhere (record, logs, index entries, stream entry) in one
        atomic step. ``True`` if it existed. A running job's handler is not stopped, but
        its outcome is dropped. (The original remq returns nothing; a bool costs nothing.)"""
        return self._run(self._delete_job(job_id, queue))

    async def adelete_job(self, job_id: str, queue: str) -> bool:
        return await self._arun(self._delete_job(job_id, queue))

    def pause_job(self, job_id: str, queue: str) -> AdminJobData | None:
        """Hold a waiting or delayed job out of the stream/schedule until :meth:`resume_job`.
        Returns the job (already paused: unchanged), ``None`` if there is no such job;
        raises :class:`InvalidJobState` for a running or finished job."""
        return self._run(self._job_op("pause", job_id, queue))

    async def apause_job(self, job_id: str, queue: str) -> AdminJobData | None:
        return await self._arun(self._job_op("pause", job_id, queue))

    def resume_job(self, job_id: str, queue: str) -> AdminJobData | None:
        """Put a paused job back: it runs (a delayed one at its original time). Returns the
        job (waiting or delayed: unchanged), ``None`` if there is no such job; raises
        :class:`InvalidJobState` for a running or finished job."""
        return self._run(self._job_op("resume", job_id, queue))

    async def aresume_job(self, job_id: str, queue: str) -> AdminJobData | None:
        return await self._arun(self._job_op("resume", job_id, queue))

    def run_job_now(self, job_id: str, queue: str) -> AdminJobData | None:
        """A delayed job runs now (its delay dropped). Returns the job (waiting already:
        unchanged), ``None`` if there is no such job; raises :class:`InvalidJobState` for
        a paused, running or finished job."""
        return self._run(self._job_op("run_now", job_id, queue))

    async def arun_job_now(self, job_id: str, queue: str) -> AdminJobData | None:
        return await self._arun(self._job_op("run_now", job_id, queue))

    # -- listing ----------------------------------------------------------------------

    def list_jobs(self, queue: str | None = None, status: str | None = None, limit: int = 100,
                  offset: int = 0, search: str | None = None) -> JobList:
        """Jobs newest first (by the time they entered their status; delayed jobs by their
        run-at time, so scheduled ones come first), without their logs (see
        :meth:`get_job`). ``queue=None``: every queue in the registry. A page costs
        O(log n + limit) per queue. ``search`` keeps jobs whose id or name contains it
        (case-insensitive), looking only at the newest ``SEARCH_WINDOW`` (4,000) jobs of
        each queue (:meth:`search_jobs` goes further back). Jobs whose record expired
        meanwhile are left out, so a page may be shorter than ``limit``; so are jobs whose
        record does not read, named in the list's ``corrupt`` (:class:`.JobList`)."""
        return self._run(self._list_jobs(queue, status, limit, offset, search))

    async def alist_jobs(self, queue: str | None = None, status: str | None = None,
                         limit: int = 100, offset: int = 0,
                         search: str | None = None) -> JobList:
        return await self._arun(self._list_jobs(queue, status, limit, offset, search))

    def search_jobs(self, search: str, queue: str | None = None, status: str | None = None,
                    limit: int = 100, offset: int = 0, before: float | None = None
                    ) -> JobSearch:
        """Jobs whose id or name contains ``search`` (case-insensitive), newest first, with
        bounded cost: each call looks at ``SEARCH_WINDOW`` (4,000) jobs of each queue at
        most (from ``before``, an index score in ms, if given). When the window ran out
        before the page was full, ``.older`` says where to go on: pass it as ``before``.
        Why a window and not an index: no write path has to maintain one (emit and
        finish stay as they are) and memory does not grow; the price is that a rare
        name takes a few "older" steps to reach."""
        return self._run(self._search_jobs(search, queue, status, limit, offset, before))

    async def asearch_jobs(self, search: str, queue: str | None = None,
                           status: str | None = None, limit: int = 100, offset: int = 0,
                           before: float | None = None) -> JobSearch:
        return await self._arun(self._search_jobs(search, queue, status, limit, offset, before))

    # -- queues -----------------------------------------------------------------------

    def get_queue_stats(self, queue: str) -> TaskStats:
        """Counts per status (O(1) each) and the length of the DLQ (shared by all queues)."""
        return self._run(self._get_queue_stats(queue))

    async def aget_queue_stats(self, queue: str) -> TaskStats:
        return await self._arun(self._get_queue_stats(queue))

    def get_queues(self) -> list[str]:
        """Every queue ever emitted to or worked, from the registry (sorted; names the
        name rule refuses left out, as in :meth:`get_queues_info`)."""
        return self._run(self._get_queues())

    async def aget_queues(self) -> list[str]:
        return await self._arun(self._get_queues())

    def get_queues_info(self) -> QueueList:
        """Every queue with its paused flag and stats, in one round trip after the registry.
        Names in the registry that the name rule refuses (e.g. with "/", from before the
        rule did) are left out, named in the list's ``unusable``."""
        return self._run(self._get_queues_info())

    async def aget_queues_info(self) -> QueueList:
        return await self._arun(self._get_queues_info())

    def pause_queue(self, queue: str) -> None:
        """Workers stop reading the queue (the flag ``TaskManager.pause_queue`` sets)."""
        self._run(self._pause_queue(queue, True))

    async def apause_queue(self, queue: str) -> None:
        await self._arun(self._pause_queue(queue, True))

    def resume_queue(self, queue: str) -> None:
        self._run(self._pause_queue(queue, False))

    async def aresume_queue(self, queue: str) -> None:
        await self._arun(self._pause_queue(queue, False))

    def is_queue_paused(self, queue: str) -> bool:
        return self._run(self._is_queue_paused(queue))

    async def ais_queue_paused(self, queue: str) -> bool:
        return await self._arun(self._is_queue_paused(queue))

    def get_finished_counts(self, queues: Sequence[str] | None = None,
                            windows_ms: Sequence[int] = (60_000, 3_600_000)
                            ) -> list[FinishedCounts]:
        """Jobs that finished (completed, failed, cancelled) in each of the last
        ``windows_ms`` per queue (default: the last minute and hour), in one round trip
        after the registry; O(log n) per count. ``queues=None``: every queue. Counts
        cover jobs still kept (finished jobs expire by the retention settings)."""
        return self._run(self._get_finished_counts(queues, windows_ms))

    async def aget_finished_counts(self, queues: Sequence[str] | None = None,
                                   windows_ms: Sequence[int] = (60_000, 3_600_000)
                                   ) -> list[FinishedCounts]:
        return await self._arun(self._get_finished_counts(queues, windows_ms))

    def list_cron(self, queues: Sequence[str] | None = None) -> list[CronSchedule]:
        """Repeat (cron) schedules with their next tick and runs so far, soonest first.
        A schedule appears once a worker serving its queue has started."""
        return self._run(self._list_cron(queues))

    async def alist_cron(self, queues: Sequence[str] | None = None) -> list[CronSchedule]:
        return await self._arun(self._list_cron(queues))

    # -- bulk ---------------------------------------------------------------------------

    def retry_all_failed(self, queue: str, batch_size: int = 1000) -> int:
        """Retry every job that is failed now (as :meth:`retry_job`), ``batch_size`` per
        atomic step; jobs failing again meanwhile are not picked up twice. Returns the count."""
        return self._run(self._retry_all_failed(queue, batch_size))

    async def aretry_all_failed(self, queue: str, batch_size: int = 1000) -> int:
        return await self._arun(self._retry_all_failed(queue, batch_size))

    def delete_completed_older_than(self, queue: str, older_than: timedelta | int, *,
                                    status: str = "completed", batch_size: int = 1000) -> int:
        """Delete jobs finished more than ``older_than`` (timedelta or ms) ago, in batches;
        ``status`` may be any finished status (completed, failed, cancelled). Returns the
        count."""
        return self._run(self._delete_completed_older_than(queue, older_than, status,
                                                           batch_size))

    async def adelete_completed_older_than(self, queue: str, older_than: timedelta | int, *,
                                           status: str = "completed",
                                           batch_size: int = 1000) -> int:
        return await self._arun(self._delete_completed_older_than(queue, older_than, status,
                                                                  batch_size))

    # -- workers and the dead-letter queue ------------------------------------------------

    def get_workers(self) -> list[WorkerInfo]:
        """Live workers (their heartbeat has not expired), most recently seen first."""
        return self._run(self._get_workers())

    async def aget_workers(self) -> list[WorkerInfo]:
        return await self._arun(self._get_workers())

    def list_dlq(self, limit: int = 100, offset: int = 0,
                 queue: str | None = None) -> list[DlqEntry]:
        """Dead letters of every queue (or of ``queue``), newest first. Each queue has its own
        stream; a page reads ``offset + limit`` entries of each, in one round trip after
        the queue registry."""
        return self._run(self._list_dlq(limit, offset, queue))

    async def alist_dlq(self, limit: int = 100, offset: int = 0,
                        queue: str | None = None) -> list[DlqEntry]:
        return await self._arun(self._list_dlq(limit, offset, queue))

    def dlq_page(self, limit: int = 100, offset: int = 0) -> tuple[int, list[DlqEntry]]:
        """:meth:`get_dlq_length` and :meth:`list_dlq` together, in two round trips."""
        return self._run(self._dlq_page(limit, offset))

    async def adlq_page(self, limit: int = 100, offset: int = 0) -> tuple[int, list[DlqEntry]]:
        return await self._arun(self._dlq_page(limit, offset))

    def dlq_page_with_queues(self, limit: int = 100, offset: int = 0
                             ) -> tuple[int, list[DlqEntry], list[str]]:
        """:meth:`dlq_page` and the queue names (in the same two round trips)."""
        return self._run(self._dlq_page_named(limit, offset))

    async def adlq_page_with_queues(self, limit: int = 100, offset: int = 0
                                    ) -> tuple[int, list[DlqEntry], list[str]]:
        return await self._arun(self._dlq_page_named(limit, offset))

    def get_dlq_length(self) -> int:
        """Dead letters in every queue's stream (one XLEN, O(1), per queue)."""
        return self._run(self._get_dlq_length())

    async def aget_dlq_length(self) -> int:
        return await self._arun(self._get_dlq_length())

    def requeue_dlq(self, entry_id: str) -> AdminJobData | None:
        """Run a dead-lettered job again (as :meth:`retry_job`; its record is rebuilt from
        the DLQ's copy if it expired) and remove the entry. ``entry_id`` is
        :attr:`DlqEntry.entry_id`, ``"<queue>:<stream id>"``. ``None``: no such entry. A
        job already on its way again is left as it is (the entry is still removed)."""
        return self._run(self._requeue_dlq(entry_id))

    async def arequeue_dlq(self, entry_id: str) -> AdminJobData | None:
        return await self._arun(self._requeue_dlq(entry_id))

    def delete_dlq(self, entry_id: str) -> bool:
        """Drop a dead letter; ``True`` if it existed."""
        return self._run(self._delete_dlq(entry_id))

    async def adelete_dlq(self, entry_id: str) -> bool:
        return await self._arun(self._delete_dlq(entry_id))

    def purge_dlq(self, queue: str) -> int:
        """Drop every dead letter of ``queue`` (one round trip); returns how many."""
        return self._run(self._purge_dlq(queue))

    async def apurge_dlq(self, queue: str) -> int:
        return await self._arun(self._purge_dlq(queue))


__all__ = ["Sdk"]
