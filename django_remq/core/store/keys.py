"""The Redis key schema: every key the engine writes is named here and nowhere else.

Per-queue keys share the hash tag ``{queue}`` so a Redis Cluster keeps one queue's
keys in one slot and each Lua script touches a single slot. The few global keys
(the queue and worker registries) are never used inside a script together with
per-queue keys. Dead letters are per queue, so the script that fails a job writes
its DLQ entry in the same atomic step.

Layout, for prefix ``remq`` and queue ``default``::

    remq:queues                      SET    names of every queue ever emitted to
    remq:workers                     ZSET   worker id -> last heartbeat (ms)
    remq:worker:<id>                 STRING worker info (JSON), expiring
    remq:wake                        CHANNEL what an idle worker waits for besides its
                                            streams (a job scheduled, a new lane, a
                                            worker's entries handed back): worker/wakeups.py
    remq:lease:sweep                 STRING the worker that runs the fleet's backstop
                                            sweep this hour (expiring)
    remq:{default}:stream            STREAM job ids waiting for or in delivery (priority 0)
    remq:{default}:stream:p<N>       STREAM the same for priority N != 0 (a lane)
    remq:{default}:lanes             ZSET   the queue's lanes: member = score = priority N
    remq:{default}:job:<id>          HASH   the job record (and any extra fields its
                                            emitter added: calls.check_extra_fields)
    remq:{default}:logs:<id>         LIST   the job's log lines (JSON), capped
    remq:{default}:status:<status>   ZSET   job ids by status; score = time (ms)
                                            (for ``delayed`` the run-at time: it
                                            doubles as the schedule)
    remq:{default}:paused            STRING present while the queue is paused
    remq:{default}:dlq               STREAM the queue's dead letters, capped MAXLEN ~
                                            (the last part is ``processor.dlq.stream_key``)
    remq:{default}:cron              ZSET   repeat handler (event) -> next tick (ms)
    remq:{default}:cron:runs         HASH   repeat handler (event) -> runs so far
    remq:{default}:totals            HASH   jobs finished per outcome and run-time histogram
                                            buckets since the queue began (finish.lua)
    remq:{default}:trend:<hour>      HASH   the same per minute of hour <epoch ms // 3600000>,
                                            expiring 24 h after the hour (finish.lua)
    remq:{default}:debounce:<event>:<key>
                                     STRING leading: "<job id>:<emit ts>" of the run
                                            that holds the window (expires with it);
                                            trailing: id of the pending delayed job
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

from ..types import JobStatus

#: The consumer group every worker joins; one per stream.
GROUP = "remq"
#: The last part of a queue's dead-letter stream key (``processor.dlq.stream_key``).
DLQ_NAME = "dlq"
#: Names a DLQ stream may not take: the queue's other keys.
_TAKEN = frozenset({"stream", "paused", "cron", "job", "logs", "status", "debounce", "totals"})
_DLQ_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


#: Longest queue name: names reach clients, key names and Channels groups.
MAX_QUEUE_NAME_LENGTH = 200
_MAX_CHECKED = 10_000
_CHECKED: set[str] = set()  # names found valid (every emit asks: keep it a set lookup)


def check_queue_name(queue: object) -> str:
    """Refuse names that would break the hash tag or the key layout, remembering
    nothing: for names from clients (see :func:`validate_queue_name`)."""
    if not isinstance(queue, str) or not queue:
        raise ValueError(f"queue name must be a non-empty string, got {repr(queue)[:80]}")
    if len(queue) > MAX_QUEUE_NAME_LENGTH:
        raise ValueError(f"queue name {queue[:40]!r}... is {len(queue)} characters long; "
                         f"use at most {MAX_QUEUE_NAME_LENGTH}")
    bad = set("{}:/") & set(queue)
    if bad or any(c.isspace() for c in queue):
        raise ValueError(
            f"queue name {queue!r} may not contain whitespace or any of '{{', '}}', ':', '/' "
            "(separators in its Redis keys and the admin's URLs); use letters, digits, '-', "
            "'_' or '.'"
        )
    return queue


def validate_queue_name(queue: str) -> str:
    """:func:`check_queue_name`, remembering the first valid names (bounded in count and,
    by the length limit, in size), since every emit asks."""
    if isinstance(queue, str) and queue in _CHECKED:
        return queue
    check_queue_name(queue)
    if len(_CHECKED) < _MAX_CHECKED:
        _CHECKED.add(queue)
    return queue


def validate_dlq_name(name: str) -> str:
    """``processor.dlq.stream_key``: the last part of each queue's DLQ stream key."""
    if not isinstance(name, str) or not _DLQ_NAME.match(name) or name in _TAKEN:
        raise ValueError(
            f"'stream_key' must name each queue's dead-letter stream (the key is "
            f"'<prefix>:{{<queue>}}:<stream_key>', so the entry is written atomically with the "
            f"job's failure), got {name!r}; use letters, digits, '-', '_' or '.' (e.g. "
            f"'{DLQ_NAME}', the default), not a full key and not one of {sorted(_TAKEN)}")
    return name


@dataclass(frozen=True)
class Keys:
    """Builds key names for one prefix; cheap to create, safe to share."""

    prefix: str = "remq"

    @cached_property
    def queues(self) -> str:
        return f"{self.prefix}:queues"

    @cached_property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    @cached_property
    def wake(self) -> str:
        """The pub/sub channel idle workers listen on (``_lib.lua``'s ``wake`` builds the
        same name from a queue's keys)."""
        return f"{self.prefix}:wake"

    @cached_property
    def sweep_lease(self) -> str:
        """Held by the one worker of the fleet that runs the backstop sweep."""
        return f"{self.prefix}:lease:sweep"

    def queue(self, queue: str, *, remember: bool = True) -> QueueKeys:
        """``remember=False`` for a name a client gave before anything vouched for it:
        its keys are built for this call only, so the cache holds real queues."""
        if not remember:
            return QueueKeys(f"{self.prefix}:{{{queue}}}")
        return _queue_keys(self.prefix, queue)


@lru_cache(maxsize=1024)
def _queue_keys(prefix: str, queue: str) -> QueueKeys:
    """One QueueKeys per queue, so its cached key names are built once (hot paths ask);
    bounded in count, and each entry by the queue name's length limit."""
    return QueueKeys(f"{prefix}:{{{queue}}}")


@dataclass(frozen=True)
class QueueKeys:
    """Key names of one queue; ``base`` is ``<prefix>:{<queue>}``."""

    base: str

    @cached_property
    def stream(self) -> str:
        return f"{self.base}:stream"

    def lane(self, priority: int) -> str:
        """The stream of one priority: ``stream`` for 0, else ``stream:p<priority>``
        (``_lib.lua``'s ``lane_stream`` builds the same name)."""
        return self.stream if priority == 0 else f"{self.base}:stream:p{priority}"

    @cached_property
    def lanes(self) -> str:
        """Registry of the queue's lanes: member = score = priority (never 0)."""
        return f"{self.base}:lanes"

    def lane_script_keys(self, priority: int) -> tuple[str, ...]:
        """``script_keys`` with the lane's stream first: for scripts that act on one
        stream (finish.lua, renew.lua)."""
        if priority == 0:
            return self.script_keys
        return (self.lane(priority), *self.script_keys[1:])

    @cached_property
    def paused(self) -> str:
        return f"{self.base}:paused"

    def dlq(self, name: str = DLQ_NAME) -> str:
        """The queue's dead-letter stream (``name``: ``processor.dlq.stream_key``)."""
        return f"{self.base}:{name}"

    @cached_property
    def job_prefix(self) -> str:
        """Scripts append a job id to this to reach a record."""
        return f"{self.base}:job:"

    @cached_property
    def logs_prefix(self) -> str:
        return f"{self.base}:logs:"

    def job(self, job_id: str) -> str:
        return f"{self.base}:job:{job_id}"

    def logs(self, job_id: str) -> str:
        return f"{self.base}:logs:{job_id}"

    def status(self, status: JobStatus | str) -> str:
        return f"{self.base}:status:{status}"

    @cached_property
    def cron(self) -> str:
        """Repeat schedule: member = event, score = its next tick (ms)."""
        return f"{self.base}:cron"

    @cached_property
    def cron_runs(self) -> str:
        return f"{self.base}:cron:runs"

    @cached_property
    def totals(self) -> str:
        """Monotonic counters finish.lua keeps (outcomes, run-time histogram)."""
        return f"{self.base}:totals"

    def trend(self, hour: int) -> str:
        """Per-minute counters of one hour (epoch ms // 3_600_000), expiring."""
        return f"{self.base}:trend:{hour}"

    def debounce(self, event: str, key: str) -> str:
        return f"{self.base}:debounce:{event}:{key}"

    @cached_property
    def script_keys(self) -> tuple[str, ...]:
        """KEYS of every queue script: stream, paused flag, then one index per status
        (in :class:`JobStatus` order, which ``_lib.lua``'s ``status_keys()`` follows)."""
        return (self.stream, self.paused, *(self.status(s) for s in JobStatus))

    @cached_property
    def delayed(self) -> str:
        """The schedule: the ``delayed`` status index, scored by run-at time."""
        return self.status("delayed")
