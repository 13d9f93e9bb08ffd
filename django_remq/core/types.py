"""Plain typed payloads shared by the engine, the Sdk and the Django layer (views, WebSocket).

Records are frozen dataclasses with a ``to_dict()`` for JSON; option bags are
TypedDicts so a type checker catches a misspelt key before the runtime check does.
Times are integer milliseconds since the epoch, as in the original remq
(github.com/mirairoad/remq).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal, TypedDict


class JobStatus(StrEnum):
    """Every status a job record can hold; each has its own index (a sorted set).

    The one Python list of statuses: the key schema, the Sdk and the views read it
    from here. Lua has the one other (``STATUSES`` in ``store/lua/_lib.lua``, same
    order: a script's status-index KEYS follow it). A member compares equal to its
    string (``JobStatus.FAILED == "failed"``)."""

    WAITING = "waiting"
    DELAYED = "delayed"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"

    @property
    def final(self) -> bool:
        """A final job does not run again unless someone retries it."""
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class JobState:
    name: str
    queue: str
    data: Any
    options: dict[str, Any]


@dataclass(frozen=True)
class LogEntry:
    message: str
    timestamp: int


@dataclass(frozen=True)
class JobError:
    message: str
    type: str
    traceback: str
    attempt: int
    timestamp: int


@dataclass(frozen=True)
class AdminJobData:
    """A job as stored: the original remq's ``AdminJobData``, plus progress, result and
    bookkeeping."""

    id: str
    state: JobState
    status: JobStatus
    timestamp: int
    delay_until: int | None = None
    lock_until: int | None = None
    priority: int = 0
    retry_count: int = 0
    retry_delay_ms: int = 0
    retried_attempts: int = 0
    repeat_count: int = 0
    repeat_delay_ms: int = 0
    logs: list[LogEntry] = field(default_factory=list)
    errors: list[JobError] = field(default_factory=list)
    last_run: int | None = None
    paused: bool = False
    progress: Any = None
    result: Any = None
    finished_at: int | None = None
    next_run: int | None = None  # repeat jobs: when the next tick runs
    deliveries: int = 0
    worker: str | None = None
    cancel_requested: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TaskStats:
    """A queue's job count per :class:`JobStatus` (one field each), and the DLQ's length."""

    queue: str
    waiting: int = 0
    delayed: int = 0
    processing: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    paused: int = 0
    dlq: int = 0

    @property
    def total(self) -> int:
        return sum(int(getattr(self, status)) for status in JobStatus)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


@dataclass(frozen=True)
class QueueInfo:
    name: str
    paused: bool
    stats: TaskStats

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "paused": self.paused, "stats": self.stats.to_dict()}


@dataclass(frozen=True)
class DlqEntry:
    """A dead letter: a job that exhausted (or was refused) its retries."""

    entry_id: str
    id: str
    queue: str
    name: str
    reason: str
    error: str
    attempts: int
    job: dict[str, Any]
    timestamp: int  # when it was dead-lettered (ms; from the entry id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WorkerInfo:
    """A live worker, from its heartbeat."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    running: list[str]  # ids of the jobs it is running
    last_seen: int
    started: int = 0  # ms; 0 from a worker that does not say
    rss: int | None = None  # bytes of resident memory at its last heartbeat
    tasks_run: int = 0  # runs ended since it started (failures to retry included)
    tasks_failed: int = 0  # of which failed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ListJobsOptions(TypedDict, total=False):
    queue: str | None
    status: str | None
    limit: int
    offset: int
    search: str | None


class RepeatOptions(TypedDict, total=False):
    pattern: str
    every_ms: int
    limit: int


class EmitOptions(TypedDict, total=False):
    """Per-task options accepted by ``emit`` (the original remq's emit options, snake_case)."""

    id: str
    attempts: int
    retry_count: int
    retry_delay_ms: int
    delay_until: Any  # datetime, or epoch milliseconds
    delay_ms: int
    priority: int
    timeout_ms: int


class HandlerOptions(EmitOptions, total=False):
    """Per-handler defaults: the emit options plus what only belongs to a handler."""

    debounce: int | DebounceConfig
    repeat: RepeatOptions


class RetryConfig(TypedDict, total=False):
    max_retries: int
    retry_delay_ms: int
    should_retry: Callable[[BaseException, int], bool]
    backoff: Any


class DLQConfig(TypedDict, total=False):
    stream_key: str  # each queue's stream name: <prefix>:{<queue>}:<stream_key> (default "dlq")
    should_send_to_dlq: Callable[[Message, BaseException, int], bool]
    maxlen: int


class DebounceConfig(TypedDict, total=False):
    window_ms: int
    key: Callable[[Message], str]
    mode: Literal["leading", "trailing"]
    max_wait_ms: int


class RetentionConfig(TypedDict, total=False):
    """How long finished jobs stay; ``None`` keeps them (unbounded: use with care)."""

    completed_max_age_ms: int | None
    completed_max_count: int | None
    failed_max_age_ms: int | None
    failed_max_count: int | None


class ProcessorOptions(TypedDict, total=False):
    retry: RetryConfig
    dlq: DLQConfig
    max_logs_per_task: int
    claim_idle_ms: int
    max_deliveries: int
    retention: RetentionConfig
    shutdown_timeout_ms: int
    priority_aging_ms: int
    timezone: str
    #: the loop and plain ``def`` handlers' threads share one CPU core (worker/shared_core.py)
    pin_threads: bool
    #: a finish waits this long for more to go in the same call (worker/acker.py)
    ack_linger_ms: int


@dataclass(frozen=True)
class Message:
    """A delivered job as the Consumer hands it to its message handler.

    ``retry_count`` is the record's count of retries left once a retry has set it,
    else ``None`` (the options say); ``deliveries`` counts this attempt's deliveries.
    ``extra``: the extra record fields the worker was asked to carry (its event sink's
    ``extra_fields``) that this job's record has, as stored; the engine never reads them."""

    id: str
    entry_id: str
    queue: str
    name: str
    data: Any
    options: dict[str, Any]
    retried_attempts: int = 0
    retry_count: int | None = None
    deliveries: int = 1
    timestamp: int = 0  # when it was emitted (ms)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def attempt(self) -> int:
        return self.retried_attempts + 1


class CancelToken:
    """Set when someone asked a running job to stop (``Sdk.cancel_job``); mutable."""

    __slots__ = ("requested",)

    def __init__(self) -> None:
        self.requested = False


@dataclass(frozen=True)
class MessageContext:
    """What the Consumer knows about a delivery besides the message.

    ``marked``: done once Redis has the job as processing (a job may start before
    that); writes to the job's record must wait for it."""

    consumer: str
    deliveries: int
    marked: Awaitable[Any] | None = None
    cancel: CancelToken = field(default_factory=CancelToken)


@dataclass(frozen=True)
class FinishedCounts:
    """Jobs of a queue that reached a final status in the last ``window_ms`` (the Sdk's
    ``get_finished_counts``: throughput at a glance, O(log n) per count)."""

    queue: str
    window_ms: int
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CronSchedule:
    """A repeat handler's schedule as stored in Redis: its next tick and runs so far."""

    queue: str
    event: str
    next_run: int  # ms
    runs: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
