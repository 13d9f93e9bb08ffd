"""Typed builders for the admin scripts (``lua/admin_*.lua``) and admin reads.

Pure, like :mod:`..store.calls`: each returns a :class:`~..store.scripts.Call` or a
:class:`~..store.scripts.Cmd` with the function that parses its reply, for the Sdk's plans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .. import jsonutil
from ..errors import CorruptRecord
from ..store import records, scripts
from ..store.keys import GROUP, Keys, QueueKeys, validate_queue_name
from ..store.records import pairs_to_dict
from ..store.scripts import Arg, Call, Cmd, Script
from ..types import DlqEntry, JobStatus, WorkerInfo

ChangeCode = Literal["ok", "noop", "requested", "missing", "state", "lane"]


@dataclass(frozen=True)
class Change:
    """Reply of a one-job admin script. Code ``lane``: nothing was changed, as the job's
    lane (``lane``, a priority) was not among those passed (``_admin.lua``'s ask_lane)."""

    code: ChangeCode
    before: str  # the job's status before the call ("" when missing)
    fields: dict[str, str]
    lane: int = 0


@dataclass(frozen=True)
class ListedJob:
    """One job of a listing: its index score (ms) and, when asked for, its record."""

    id: str
    score: float
    fields: dict[str, str]


@dataclass(frozen=True)
class Page:
    total: int
    entries: list[ListedJob]


@dataclass(frozen=True)
class Found:
    """A search's matches; ``cut`` is set when its window ran out first: jobs scoring
    above it were all looked at, older ones were not."""

    entries: list[ListedJob]
    cut: float | None


@dataclass(frozen=True)
class Counts:
    low: float | None
    high: float | None
    total: int
    above: list[int]  # per probe: jobs with a score above it


def _s(value: Any) -> str:
    """A reply's value as text (the Sdk's clients do not decode); bytes that are not
    UTF-8 escaped (``records.escaped``)."""
    return records.as_text(value) if isinstance(value, bytes) else str(value)


def _base(qk: QueueKeys) -> list[Arg]:
    return [qk.job_prefix, qk.logs_prefix, GROUP]


def _change(reply: Any) -> Change:
    """{code, status before[, record fields[, lane]]}: admin_delete sends no record."""
    code, before, *rest = reply
    flat = rest[0] if rest else []
    lane = int(rest[1]) if len(rest) > 1 else 0
    return Change(_s(code), _s(before), pairs_to_dict(flat), lane)  # type: ignore[arg-type]


def lanes(qk: QueueKeys) -> Cmd[list[int]]:
    """The queue's priority lanes (other than 0), for admin_bulk."""
    return Cmd(("ZRANGE", qk.lanes, 0, -1), lambda r: [int(x) for x in r])


def _keys(qk: QueueKeys, lanes: Sequence[int], dlq: str | None = None) -> tuple[str, ...]:
    """The standard keys, the lanes registry, the dead-letter stream (``dlq``, a full
    key; the default name's if not given), then the lane streams (see _admin.lua)."""
    return (*qk.script_keys, qk.lanes, dlq or qk.dlq(),
            *(qk.lane(p) for p in lanes if p != 0))


def _job(script: Script, qk: QueueKeys, job_id: str, lanes: Sequence[int],
         *extra: Arg, dlq: str | None = None) -> Call[Change]:
    return Call(script, _keys(qk, lanes, dlq), [*_base(qk), job_id, *extra], _change)


def retry(qk: QueueKeys, job_id: str, lanes: Sequence[int] = (),
          dlq: str | None = None) -> Call[Change]:
    """A failed/cancelled job runs again; its dead letter in ``dlq`` goes."""
    return _job(scripts.ADMIN_RETRY, qk, job_id, lanes, dlq=dlq)


def cancel(qk: QueueKeys, job_id: str, keep_ms: int, lanes: Sequence[int] = ()) -> Call[Change]:
    return _job(scripts.ADMIN_CANCEL, qk, job_id, lanes, keep_ms)


def pause(qk: QueueKeys, job_id: str, lanes: Sequence[int] = ()) -> Call[Change]:
    return _job(scripts.ADMIN_PAUSE, qk, job_id, lanes)


def resume(qk: QueueKeys, job_id: str, lanes: Sequence[int] = ()) -> Call[Change]:
    return _job(scripts.ADMIN_RESUME, qk, job_id, lanes)


def run_now(qk: QueueKeys, job_id: str, lanes: Sequence[int] = ()) -> Call[Change]:
    return _job(scripts.ADMIN_RUN_NOW, qk, job_id, lanes)


def delete(qk: QueueKeys, job_id: str, lanes: Sequence[int] = ()) -> Call[Change]:
    return _job(scripts.ADMIN_DELETE, qk, job_id, lanes)


def restore(qk: QueueKeys, job_id: str, fields: Mapping[str, str],
            lanes: Sequence[int] = (), dlq: str | None = None) -> Call[Change]:
    flat = [x for pair in fields.items() for x in pair]
    return _job(scripts.ADMIN_RESTORE, qk, job_id, lanes, *flat, dlq=dlq)


def bulk(qk: QueueKeys, action: Literal["retry", "delete"], status: str, max_score_ms: int,
         batch: int, lanes: Sequence[int] = (), dlq: str | None = None) -> Call[int]:
    args: list[Arg] = [*_base(qk), action, status, max_score_ms, batch]
    return Call(scripts.ADMIN_BULK, _keys(qk, lanes, dlq), args, int)


#: Records (and logs) of job ids: the store's one reader.
read = records.read


def stats(qk: QueueKeys) -> Call[tuple[bool, dict[str, int]]]:
    def parse(reply: Any) -> tuple[bool, dict[str, int]]:
        return bool(int(reply[0])), dict(zip(JobStatus, (int(x) for x in reply[1:]), strict=True))

    return Call(scripts.ADMIN_STATS, qk.script_keys, _base(qk), parse)


# -- listing ------------------------------------------------------------------------

def _page(reply: Any) -> Page:
    total, entries = reply
    return Page(int(total), [ListedJob(_s(i), float(score), pairs_to_dict(flat))
                             for i, score, flat in entries])


def _list(qk: QueueKeys, statuses: Iterable[str], mode: str, with_records: bool,
          *args: Arg) -> list[Arg]:
    return [*_base(qk), mode, ",".join(statuses), "1" if with_records else "0", *args]


def list_page(qk: QueueKeys, statuses: Sequence[str], offset: int, limit: int) -> Call[Page]:
    """A page with records, newest first; O(log n + page) (see admin_list.lua)."""
    args = _list(qk, statuses, "page", True, offset, limit)
    return Call(scripts.ADMIN_LIST, qk.script_keys, args, _page)


def list_upto(qk: QueueKeys, statuses: Sequence[str], max_score: str, n: int) -> Call[Page]:
    """The first ``n`` ids with a score <= ``max_score``, newest first (no records)."""
    args = _list(qk, statuses, "upto", False, max_score, n)
    return Call(scripts.ADMIN_LIST, qk.script_keys, args, _page)


def list_search(qk: QueueKeys, statuses: Sequence[str], needle: str, window: int,
                n: int, upper: float | None = None, *, in_data: bool = False,
                event: str = "") -> Call[Found]:
    """The first ``n`` jobs (at or below ``upper``) whose id or name (or, ``in_data``,
    data) contains ``needle``, of ``event`` if given, looking at ``window`` jobs at most,
    newest first (no records)."""
    def parse(reply: Any) -> Found:
        page, cut = _page(reply[:2]), _s(reply[2])
        return Found(page.entries, float(cut) if cut else None)

    bound = "+inf" if upper is None else f"{upper:.0f}"
    args = _list(qk, statuses, "search", False, needle.lower(), window, n, bound,
                 "1" if in_data else "0", event)
    return Call(scripts.ADMIN_LIST, qk.script_keys, args, parse)


def list_count(qk: QueueKeys, statuses: Sequence[str], probes: Sequence[int]) -> Call[Counts]:
    """Score bounds, total, and how many jobs score above each probe (O(log n) each)."""
    def parse(reply: Any) -> Counts:
        low, high = _s(reply[0]), _s(reply[1])
        return Counts(float(low) if low else None, float(high) if high else None,
                      int(reply[2]), [int(x) for x in reply[3:]])

    args = _list(qk, statuses, "count", False, *probes)
    return Call(scripts.ADMIN_LIST, qk.script_keys, args, parse)


# -- plain reads: registries and the DLQ ---------------------------------------------

class QueueNames(list[str]):
    """The registry's queue names (sorted) that name a usable queue; ``unusable``: the
    others with why, e.g. "a/b" emitted before the name rule refused "/": no key or page
    of theirs can be named safely, so the Sdk leaves them out rather than fail on them."""

    def __init__(self, names: Iterable[str] = (),
                 unusable: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(names)
        self.unusable: list[tuple[str, str]] = list(unusable)


def _usable(reply: Any) -> QueueNames:
    out = QueueNames()
    for name in sorted(_s(x) for x in reply):
        try:
            out.append(validate_queue_name(name))
        except ValueError as exc:
            out.unusable.append((name, str(exc)))
    return out


def queue_names(keys: Keys) -> Cmd[QueueNames]:
    return Cmd(("SMEMBERS", keys.queues), _usable)


def worker_ids(keys: Keys) -> Cmd[list[str]]:
    return Cmd(("ZREVRANGE", keys.workers, 0, -1), lambda reply: [_s(x) for x in reply])


def worker_info(keys: Keys, worker_id: str) -> Cmd[WorkerInfo | None]:
    def parse(reply: Any) -> WorkerInfo | None:
        if reply is None:
            return None  # its heartbeat expired: not live
        info = jsonutil.loads(_s(reply))
        return WorkerInfo(id=info["id"], host=info.get("host", ""), pid=int(info.get("pid", 0)),
                          queues=list(info.get("queues", [])),
                          concurrency=int(info.get("concurrency", 0)),
                          running=list(info.get("running", [])),
                          last_seen=int(info.get("last_seen", 0)),
                          started=int(info.get("started") or 0),
                          rss=int(info["rss"]) if info.get("rss") else None,
                          tasks_run=int(info.get("tasks_run") or 0),
                          tasks_failed=int(info.get("tasks_failed") or 0))

    return Cmd(("GET", keys.worker(worker_id)), parse)


#: A dead letter and the record fields to rebuild its job from (if the record expired).
Letter = tuple[DlqEntry, dict[str, str]]


def dlq_entry(queue: str, entry_id: Any, flat: Any) -> Letter:
    """One entry of ``queue``'s DLQ stream. ``job`` holds the final record's fields as
    finish.lua left them (and ``logs`` its log lines): decoded for the entry, kept raw
    for requeueing. An entry written by hand may hold anything: keep it, never raise."""
    fields = flat if isinstance(flat, dict) else pairs_to_dict(list(flat))
    f = {_s(k): _s(v) for k, v in fields.items()}
    sid = _s(entry_id)
    record = _json(f.get("job"), dict, {"raw": f.get("job", "")})
    logs = _json(f.get("logs"), list, [])
    attempts = f.get("attempts") or "0"
    entry = DlqEntry(entry_id=f"{queue}:{sid}", id=f.get("id", ""),
                     queue=f.get("queue") or queue, name=f.get("name", ""),
                     reason=f.get("reason", ""), error=f.get("error", ""),
                     attempts=int(attempts) if attempts.isdigit() else 0,
                     job=_decoded(record, logs, queue), timestamp=int(sid.split("-", 1)[0]))
    raw = {k: v if isinstance(v, str) else jsonutil.dumps(v) for k, v in record.items()}
    return entry, raw


def _json(text: str | None, kind: type, default: Any) -> Any:
    if not text:
        return kind()
    try:
        value = jsonutil.loads(text)
    except ValueError:
        return default
    if kind is list and value == {}:  # Lua's cjson writes an empty table as {}
        return []
    return value if isinstance(value, kind) else default


def _decoded(record: dict[str, Any], logs: list[Any], queue: str) -> dict[str, Any]:
    """The job as ``AdminJobData.to_dict()``; a record that does not decode, as found."""
    if not record or not all(isinstance(v, str) for v in record.values()):
        return record
    try:
        return records.decode(record, [str(x) for x in logs], queue).to_dict()
    except CorruptRecord:
        return record


def _letters(queue: str) -> Any:
    return lambda reply: [dlq_entry(queue, eid, flat) for eid, flat in reply or ()]


def dlq_range(stream: str, queue: str, count: int) -> Cmd[list[Letter]]:
    """The newest ``count`` dead letters of ``queue``, newest first."""
    return Cmd(("XREVRANGE", stream, "+", "-", "COUNT", count), _letters(queue))


def dlq_get(stream: str, queue: str, stream_id: str) -> Cmd[list[Letter]]:
    return Cmd(("XRANGE", stream, stream_id, stream_id), _letters(queue))


def dlq_length(stream: str) -> Cmd[int]:
    return Cmd(("XLEN", stream), int)


def dlq_delete(stream: str, stream_id: str) -> Cmd[bool]:
    return Cmd(("XDEL", stream, stream_id), lambda reply: bool(int(reply)))


def dlq_purge(stream: str) -> Cmd[bool]:
    """Drop a queue's whole DLQ stream (the next dead letter makes a new one)."""
    return Cmd(("DEL", stream), lambda reply: bool(int(reply)))


# -- throughput and cron schedules ---------------------------------------------------

def finished_since(qk: QueueKeys, status: str, since_ms: int) -> Cmd[int]:
    """Jobs that entered a final ``status`` at or after ``since_ms`` (ZCOUNT: O(log n))."""
    return Cmd(("ZCOUNT", qk.status(status), since_ms, "+inf"), int)


def _score_pairs(reply: Any) -> list[tuple[str, float]]:
    """ZRANGE ... WITHSCORES as (member, score) pairs, from a RESP2 or RESP3 reply."""
    items = list(reply or ())
    if items and isinstance(items[0], list | tuple):
        return [(_s(m), float(s)) for m, s in items]
    return [(_s(items[i]), float(items[i + 1])) for i in range(0, len(items), 2)]


def cron_schedule(qk: QueueKeys) -> Cmd[list[tuple[str, float]]]:
    return Cmd(("ZRANGE", qk.cron, 0, -1, "WITHSCORES"), _score_pairs)


def cron_runs(qk: QueueKeys) -> Cmd[dict[str, int]]:
    def parse(reply: Any) -> dict[str, int]:
        pairs = reply if isinstance(reply, dict) else pairs_to_dict(list(reply or ()))
        return {_s(k): int(v) for k, v in pairs.items()}

    return Cmd(("HGETALL", qk.cron_runs), parse)
