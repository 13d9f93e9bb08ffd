"""The Sdk's plans on dead letters: each queue's DLQ stream, listed newest first across
queues, counted, requeued and dropped."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import InvalidOptions, MalformedMessage
from ..store.records import decode
from ..types import AdminJobData, DlqEntry
from . import admin_calls as ac
from .base import SdkBase, check_page
from .plan import Plan

#: A DLQ entry id as the Sdk gives it out: the queue, then the id in its stream.
DLQ_ENTRY_ID = re.compile(r"^(?P<queue>[^\s{}:]+):(?P<sid>\d+-\d+)$")


class DeadLetterPlans(SdkBase):
    """The queues' dead-letter streams."""

    def _get_dlq_length(self) -> Plan[int]:
        names = yield from self._queue_names(None)
        lengths = yield [ac.dlq_length(self._dlq(q)) for q in names]
        return sum(lengths)

    def _list_dlq(self, limit: int = 100, offset: int = 0,
                  queue: str | None = None) -> Plan[list[DlqEntry]]:
        check_page(limit, offset)
        names = yield from self._queue_names(None if queue is None else [queue])
        pages = yield [ac.dlq_range(self._dlq(q), q, offset + limit) for q in names]
        return _newest(pages)[offset:offset + limit]

    def _dlq_page(self, limit: int, offset: int) -> Plan[tuple[int, list[DlqEntry]]]:
        """The total and one page across queues, in two round trips."""
        total, entries, _ = yield from self._dlq_page_named(limit, offset)
        return total, entries

    def _dlq_page_named(self, limit: int, offset: int
                        ) -> Plan[tuple[int, list[DlqEntry], list[str]]]:
        """:meth:`_dlq_page` and the queue names it read (for a page's queue filter)."""
        check_page(limit, offset)
        names = yield from self._queue_names(None)
        replies = yield [*(ac.dlq_length(self._dlq(q)) for q in names),
                         *(ac.dlq_range(self._dlq(q), q, offset + limit) for q in names)]
        n = len(names)
        return sum(replies[:n]), _newest(replies[n:])[offset:offset + limit], list(names)

    def _requeue_dlq(self, entry_id: str) -> Plan[AdminJobData | None]:
        queue, sid = _split_entry_id(entry_id)
        [found] = yield [ac.dlq_get(self._dlq(queue), queue, sid)]
        if not found:
            return None
        entry, record = found[0]
        if not entry.id or not entry.queue:
            raise MalformedMessage(f"DLQ entry {entry_id} names no job id or queue (fields "
                                   f"id={entry.id!r}, queue={entry.queue!r}); delete it")
        qk, fields = self._qk(entry.queue), _job_fields(entry, record)
        # The entry goes in the same round trip. Should the script ask for a lane, it
        # found the job's record (the copy's lane is passed), so nothing is lost with it.
        dlq = self._dlq(entry.queue)
        change = yield from self._move(qk, lambda lanes: ac.restore(qk, entry.id, fields,
                                                                    lanes, dlq),
                                       along=[ac.dlq_delete(self._dlq(queue), sid)],
                                       lane=_lane(fields))
        return decode(change.fields, None, entry.queue)

    def _purge_dlq(self, queue: str) -> Plan[int]:
        """Every dead letter of ``queue`` gone, in one round trip; how many there were."""
        stream = self._dlq(queue)
        n, _ = yield [ac.dlq_length(stream), ac.dlq_purge(stream)]
        return n  # type: ignore[no-any-return]

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


def _job_fields(entry: DlqEntry, record: dict[str, str]) -> dict[str, str]:
    """The DLQ's copy of a record as field/value strings, for a record that has expired."""
    fields = dict(record)
    fields.update(id=entry.id, queue=entry.queue)
    fields.setdefault("name", entry.name)
    return fields


def _lane(fields: dict[str, str]) -> int:
    """The lane of the DLQ's copy of a record (an entry written by hand: maybe none)."""
    try:
        priority = float(fields.get("priority") or 0)
    except ValueError:
        return 0
    return int(priority) if priority.is_integer() else 0
