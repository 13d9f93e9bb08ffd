"""One typed entry per Lua script: builds its keys and arguments, parses its reply.

These are pure (no I/O), so the sync and async callers share them; see
:func:`.scripts.run_many` / :func:`.scripts.arun_many`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from .. import jsonutil
from ..errors import InvalidOptions
from . import scripts
from .keys import DLQ_NAME, GROUP, QueueKeys
from .records import as_text, pairs_to_dict
from .scripts import Arg, Call, Cmd

Verdict = Literal["run", "gone", "orphan", "requeued", "poison", "corrupt", "unreadable",
                  "malformed", "held"]
OutcomeKind = Literal["completed", "failed", "cancelled", "retry", "malformed"]
KEEP = -1  # "no limit" in retention arguments
MAX_RETENTION = 10**13  # ms (over 300 years) or jobs; Lua's numbers hold it exactly
#: finish.lua's reply for an outcome whose record it could not update (now failed, corrupt)
FINISH_CORRUPT = 2


@dataclass(frozen=True)
class NewJob:
    id: str
    fields: Sequence[str]
    run_at_ms: int = 0
    #: trailing debounce (event, debounce key, DebounceSpec): see :mod:`.debounce`
    debounce: tuple[str, str, Any] | None = None
    #: its priority, which picks its lane (stream); the record keeps it as ``priority``
    priority: int = 0


#: The record fields deliver.lua returns for a job to run (its RUN_FIELDS).
RUN_FIELDS = ("name", "data", "options", "retried_attempts", "retry_count", "timestamp",
              "deliveries")
#: Fields the engine writes or reads in a job record; an extra field may not take these.
ENGINE_FIELDS = frozenset({
    "id", "name", "queue", "data", "options", "status", "timestamp", "delay_until",
    "lock_until", "priority", "retry_count", "retry_delay_ms", "retried_attempts",
    "repeat_count", "repeat_delay_ms", "errors", "last_run", "progress", "result",
    "finished_at", "next_run", "deliveries", "worker", "cancel_requested", "entry",
    "debounce_first", "debounced", "paused", "logged", "dlq_entry"})
_EXTRA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def check_extra_fields(names: Iterable[str], where: str) -> tuple[str, ...]:
    """Names of extra record fields: the engine stores them for someone else (an emit's
    ``extra``) and hands them back with a job to run, and never reads them. A name is a
    letter then letters, digits or ``_`` (deliver.lua gets them comma-separated), and
    none of :data:`ENGINE_FIELDS`."""
    names = tuple(names)
    for name in names:
        if not isinstance(name, str) or not _EXTRA_NAME.match(name) or name in ENGINE_FIELDS:
            raise InvalidOptions(
                f"{where}: {name!r} cannot name an extra record field: use a letter then "
                "letters, digits or '_' (at most 64), not one of the engine's fields "
                f"({', '.join(sorted(ENGINE_FIELDS))})")
    return names


# Delivery and Outcome are made once per task: slotted, not frozen (a frozen dataclass
# costs several times as much to build); nothing changes them once made.
@dataclass(slots=True)
class Delivery:
    """One entry as deliver.lua left it. ``fields``: the RUN_FIELDS that are set (for
    "run"/"poison"/"corrupt"; "corrupt" adds ``corrupt_field`` and ``corrupt_value``),
    ``type`` (for "unreadable"), or the raw stream entry (for "malformed")."""

    entry_id: str
    job_id: str
    verdict: Verdict
    fields: dict[str, str]
    #: the priority of the lane (stream) the entry is on
    lane: int = 0
    #: for "run": the extra fields asked for that the record has (see :func:`fetch`)
    extra: dict[str, str] | None = None


@dataclass(slots=True)
class Outcome:
    """What became of one delivered job; finish.lua applies it with the acknowledgement.
    ``error`` (a JSON object) is appended to the record's errors."""

    entry_id: str
    job_id: str
    kind: OutcomeKind
    fields: Mapping[str, str] = field(default_factory=dict)
    run_at_ms: int = 0
    error: str = ""
    #: its DLQ entry (see :mod:`.dlq`): finish.lua writes it with the failure, if the
    #: worker has a DLQ
    dead: Mapping[str, str] | None = None
    #: the priority of the lane (stream) the entry is on (the consumer sets it)
    lane: int = 0


@dataclass(frozen=True)
class Retention:
    completed_max_age_ms: int | None = 86_400_000
    completed_max_count: int | None = 10_000
    failed_max_age_ms: int | None = 7 * 86_400_000
    failed_max_count: int | None = 100_000

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is None:
                continue
            if (not isinstance(value, int) or isinstance(value, bool)
                    or not 0 <= value <= MAX_RETENTION):
                raise InvalidOptions(
                    f"processor 'retention': {name!r} must be an int in 0..{MAX_RETENTION} "
                    f"({'milliseconds' if name.endswith('_ms') else 'jobs'}) or None to keep "
                    f"all, got {value!r}")

    def args(self) -> list[int]:
        values = (self.completed_max_age_ms, self.completed_max_count,
                  self.failed_max_age_ms, self.failed_max_count)
        return [KEEP if v is None else v for v in values]


@dataclass(frozen=True)
class Promoted:
    moved: int
    next_due_in_ms: int | None
    now_ms: int
    paused: bool
    lanes: tuple[int, ...] = ()  # the queue's lanes registry (priorities, highest first)


def _ints(reply: Any) -> list[int]:
    return [int(x) for x in reply]


def emit(qk: QueueKeys, jobs: Iterable[NewJob]) -> Call[list[int]]:
    jobs = list(jobs)
    args: list[Arg] = [qk.job_prefix, qk.logs_prefix]
    for job in jobs:  # flat, as emit.lua reads them
        args += (job.id, job.run_at_ms, job.priority, len(job.fields), *job.fields)
    lanes = sorted({job.priority for job in jobs} - {0})
    return Call(scripts.EMIT, (*qk.script_keys, *(qk.lane(p) for p in lanes)), args, _ints)


def register_lanes(qk: QueueKeys, jobs: Iterable[NewJob]) -> Cmd[Any] | None:
    """ZADD the lanes of ``jobs`` (priorities other than 0) to the queue's registry,
    where workers learn which lane streams to read; ``None`` when all are priority 0."""
    lanes = sorted({job.priority for job in jobs} - {0})
    if not lanes:
        return None
    return Cmd(("ZADD", qk.lanes, *(x for p in lanes for x in (p, p))))


@lru_cache(maxsize=512)
def _deliveries(lanes: tuple[int, ...], extra: tuple[str, ...] = ()
                ) -> Callable[[Any], list[Delivery]]:
    """The parser of deliver.lua's reply for a call over ``lanes`` asking for ``extra``
    fields (one per lane set and extra fields); bounded in count, and each key by the
    priority range (-100..100) and a worker's one set of extra fields."""
    single = len(lanes) == 1

    def parse(reply: Any) -> list[Delivery]:
        out = []
        for item in reply:
            entry_id, job_id, verdict, values = item[0], item[1], _s(item[2]), item[3]
            if verdict == "malformed":
                fields = pairs_to_dict(values)
            elif verdict == "unreadable":
                fields = {"type": _s(values[0])}
            else:  # str already on a decoding client (the engine's): no per-value call
                fields = {k: v if isinstance(v, str) else _s(v)
                          for k, v in zip(RUN_FIELDS, values, strict=False) if v}
                if verdict == "corrupt":
                    fields["corrupt_field"] = _s(values[len(RUN_FIELDS)])
                    fields["corrupt_value"] = _s(values[len(RUN_FIELDS) + 1])
            if single:
                lane = lanes[0]
            else:  # the entry's stream: the n-th of the lanes passed (0: none, "held")
                n = int(item[4]) if len(item) > 4 else 0
                lane = lanes[n - 1] if n > 0 else 0
            d = Delivery(_s(entry_id), _s(job_id), verdict, fields, lane)  # type: ignore[arg-type]
            if extra and len(item) > 5:  # values as stored: the engine does not read them
                d.extra = {k: as_text(v) for k, v in zip(extra, item[5], strict=False) if v}
            out.append(d)
        return out

    return parse


MAIN_LANE = (0,)


def _deliver(qk: QueueKeys, consumer: str, lock_ms: int, max_deliveries: int,
             lanes: Sequence[int], extra: tuple[str, ...], mode: str,
             *rest: Arg) -> Call[list[Delivery]]:
    args: list[Arg] = [qk.job_prefix, GROUP, consumer, lock_ms, max_deliveries, mode,
                       ",".join(extra), *rest]
    keys = qk.script_keys
    if tuple(lanes) != MAIN_LANE:
        keys = (*keys, *(qk.lane(p) for p in lanes))
    return Call(scripts.DELIVER, keys, args, _deliveries(tuple(lanes), extra))


def fetch(qk: QueueKeys, consumer: str, count: int, *, lock_ms: int,
          max_deliveries: int, lanes: Sequence[int] = MAIN_LANE,
          aging_ms: int = 0, extra: tuple[str, ...] = ()) -> Call[list[Delivery]]:
    """Read up to ``count`` new entries from the ``lanes`` (priorities, highest first;
    with ``aging_ms``, lanes whose next entry waited that long first) and deliver them,
    in one step. ``extra``: record fields (see :func:`check_extra_fields`) returned with
    each job to run, as ``Delivery.extra``; the same in :func:`pending` and :func:`reclaim`."""
    if aging_ms:
        return _deliver(qk, consumer, lock_ms, max_deliveries, lanes, extra, "fetch", count,
                        aging_ms)
    return _deliver(qk, consumer, lock_ms, max_deliveries, lanes, extra, "fetch", count)


def pending(qk: QueueKeys, consumer: str, *, lock_ms: int, max_deliveries: int,
            lanes: Sequence[int] = MAIN_LANE, limit: int = 10_000,
            scan: int = 10_000, after: Sequence[str] = (),
            extra: tuple[str, ...] = ()) -> Call[list[Delivery]]:
    """Deliver what this consumer's blocking read took (pipelined right after it), at
    most ``limit`` to run; a last "held" delivery says some wait for the next call.
    ``after``: per lane, the last entry id this consumer was given there (see
    :class:`..worker.reader.LastGiven`); only newer entries are read."""
    return _deliver(qk, consumer, lock_ms, max_deliveries, lanes, extra, "pending", scan,
                    limit, *after)


def reclaim(qk: QueueKeys, consumer: str, *, min_idle_ms: int, count: int, lock_ms: int,
            max_deliveries: int, lanes: Sequence[int] = MAIN_LANE,
            extra: tuple[str, ...] = ()) -> Call[list[Delivery]]:
    """Take over and deliver up to ``count`` entries idle for ``min_idle_ms``."""
    return _deliver(qk, consumer, lock_ms, max_deliveries, lanes, extra, "claim",
                    min_idle_ms, count)


def finish(qk: QueueKeys, outcomes: Iterable[Outcome], retention: Retention, lane: int = 0,
           *, dlq: tuple[str, int] | None = None) -> Call[list[int]]:
    """Apply outcomes of entries on one lane (finish.lua acts on one stream, KEYS[1]); with
    ``dlq`` (the queue's DLQ stream name, its maxlen) a job that ends failed with a
    ``dead`` entry (or as corrupt) gets it in the same script."""
    batch = jsonutil.dumps([
        [o.entry_id, o.job_id, o.kind, o.run_at_ms, [x for kv in o.fields.items() for x in kv],
         o.error, [x for kv in o.dead.items() for x in kv] if o.dead and dlq else 0]
        for o in outcomes])
    name, maxlen = dlq or (DLQ_NAME, 0)
    args: list[Arg] = [qk.job_prefix, qk.logs_prefix, GROUP, *retention.args(), batch, maxlen]
    return Call(scripts.FINISH, (*qk.lane_script_keys(lane), qk.dlq(name)), args, _ints)


def promote(qk: QueueKeys, lanes: Sequence[int] = (), limit: int = 1000) -> Call[Promoted]:
    """Move due jobs to their lanes' streams; ``lanes``: the priorities known (others
    stay due until the reply's ``lanes`` is passed back)."""
    def parse(reply: Any) -> Promoted:
        moved, wait, now, paused = (int(x) for x in reply[:4])
        return Promoted(moved, None if wait < 0 else wait, now, bool(paused),
                        tuple(int(x) for x in reply[4]))

    keys = (*qk.script_keys, qk.lanes, *(qk.lane(p) for p in lanes if p != 0))
    return Call(scripts.PROMOTE, keys, [qk.job_prefix, limit], parse)


@dataclass(frozen=True)
class Renewed:
    owned: list[str]  # entry ids this consumer still owns
    cancel: list[str]  # job ids asked to cancel


def renew(qk: QueueKeys, consumer: str, running: Sequence[tuple[str, str]],
          lock_ms: int, lane: int = 0) -> Call[Renewed]:
    """Heartbeat for ``running``: (job id, entry id) of each job this worker runs in one
    lane (renew.lua acts on one stream, KEYS[1])."""
    args: list[Arg] = [qk.job_prefix, GROUP, consumer, lock_ms,
                       *(x for pair in running for x in pair)]
    return Call(scripts.RENEW, qk.lane_script_keys(lane), args,
                lambda reply: Renewed([_s(x) for x in reply[0]], [_s(x) for x in reply[1]]))


def update(qk: QueueKeys, job_id: str, items: Sequence[tuple[str, str]],
           max_logs: int) -> Call[bool]:
    args: list[Arg] = [max_logs]
    for kind, value in items:
        args += [kind, value]
    return Call(scripts.UPDATE, (qk.job(job_id), qk.logs(job_id)), args, lambda r: bool(int(r)))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
