"""The Sdk's plans on queues: stats, the paused flag, finished counts, cron schedules,
and the workers serving them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import InvalidOptions
from ..store.scripts import Cmd
from ..types import CronSchedule, FinishedCounts, JobStatus, QueueInfo, TaskStats, WorkerInfo
from . import admin_calls as ac
from .base import SdkBase, now_ms
from .plan import Plan


class QueueList(list[QueueInfo]):
    """Queues with their stats (a list); ``unusable``: names in the registry that the
    name rule refuses, with why (see :class:`.ops.QueueNames`), left out."""

    def __init__(self, infos: Iterable[QueueInfo] = (),
                 unusable: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(infos)
        self.unusable: list[tuple[str, str]] = list(unusable)


class QueuePlans(SdkBase):
    """Whole queues and the live workers."""

    def _get_queue_stats(self, queue: str) -> Plan[TaskStats]:
        [(_, counts), dlq] = yield [ac.stats(self._qk(queue)), ac.dlq_length(self._dlq(queue))]
        return TaskStats(queue=queue, dlq=dlq, **counts)

    def _get_queues(self) -> Plan[list[str]]:
        [names] = yield [ac.queue_names(self.keys)]
        return names  # type: ignore[no-any-return]

    def _get_queues_info(self) -> Plan[QueueList]:
        [names] = yield [ac.queue_names(self.keys)]
        replies = yield [*(ac.stats(self._qk(q)) for q in names),
                         *(ac.dlq_length(self._dlq(q)) for q in names)]
        n = len(names)
        return QueueList((QueueInfo(name=q, paused=paused,
                                    stats=TaskStats(queue=q, dlq=dlq, **counts))
                          for q, (paused, counts), dlq in zip(names, replies[:n], replies[n:],
                                                              strict=True)),
                         names.unusable)

    def _pause_queue(self, queue: str, paused: bool) -> Plan[None]:
        key = self._qk(queue).paused
        yield [Cmd(("SET", key, "1") if paused else ("DEL", key))]

    def _is_queue_paused(self, queue: str) -> Plan[bool]:
        [flag] = yield [Cmd(("EXISTS", self._qk(queue).paused), lambda r: bool(int(r)))]
        return flag  # type: ignore[no-any-return]

    def _get_finished_counts(self, queues: Sequence[str] | None,
                             windows_ms: Sequence[int]) -> Plan[list[FinishedCounts]]:
        for w in windows_ms:
            if not isinstance(w, int) or isinstance(w, bool) or w <= 0:
                raise InvalidOptions(f"windows_ms must be ints > 0 (ms), got {w!r}")
        names = yield from self._queue_names(queues)
        now = now_ms()
        asks = [(q, w, s) for q in names for w in windows_ms for s in JobStatus if s.final]
        if not asks:
            return []
        counts = yield [ac.finished_since(self._qk(q), s, now - w) for q, w, s in asks]
        found: dict[tuple[str, int], dict[str, int]] = {}
        for (q, w, s), n in zip(asks, counts, strict=True):
            found.setdefault((q, w), {})[s] = n
        return [FinishedCounts(queue=q, window_ms=w, **by_status)
                for (q, w), by_status in found.items()]

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

    def _get_workers(self) -> Plan[list[WorkerInfo]]:
        [ids] = yield [ac.worker_ids(self.keys)]
        infos = yield [ac.worker_info(self.keys, i) for i in ids]
        return [w for w in infos if w is not None]
