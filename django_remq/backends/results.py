"""A remq job record read back as the framework's ``TaskResult``, from any process.

The record already holds the status, the timestamps, the worker and start of the latest
delivery, and one error per failed attempt (with its traceback). What the framework
wants beyond that -- which worker ran each earlier attempt, when the first one started,
the exception's full class path -- the worker writes as one log line per attempt that
raised (:func:`ended_line`); it reads well in the admin pages too, and a success costs
no extra write.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from ..core import errors as core_errors
from ..core.sdk import admin_calls as ac
from ..core.sdk.plan import Plan
from ..core.store.keys import Keys
from ..core.store.records import decode
from ..core.types import AdminJobData
from .compat import Task, TaskError, TaskResult, TaskResultDoesNotExist, TaskResultStatus

STATUS = {"waiting": TaskResultStatus.READY, "delayed": TaskResultStatus.READY,
          "paused": TaskResultStatus.READY, "processing": TaskResultStatus.RUNNING,
          "completed": TaskResultStatus.SUCCESSFUL, "failed": TaskResultStatus.FAILED,
          "cancelled": TaskResultStatus.FAILED}
#: keys of a job's data that mark it as a Django task call
CALL_KEYS = frozenset({"args", "kwargs", "backend", "enqueued_at"})
_ENDED = re.compile(r"^django task: attempt (\d+) on worker (\S+) \(started (\d+)\) "
                    r"failed with ([\w.]+)")
_CANCELLED = "asyncio.exceptions.CancelledError"


def ended_line(attempt: int, worker_id: str, started_ms: int, exc: BaseException) -> str:
    """The log line of an attempt that raised (or was stopped): who, when, what."""
    return (f"django task: attempt {attempt} on worker {worker_id} (started {started_ms}) "
            f"failed with {class_path(type(exc))}: {exc}")[:2000]


def _latest_unlogged(job: AdminJobData, ended: set[int]) -> bool:
    """Whether the record's latest delivery is missing from the log lines: it runs now,
    it succeeded, or the engine failed it (a crash, a sync task's timeout)."""
    if job.status in ("processing", "completed"):
        return True
    if job.status == "failed" and job.errors:
        return job.errors[-1].attempt not in ended
    return False


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def to_datetime(ms: int | None) -> datetime | None:
    """Epoch ms as the framework's datetimes: aware UTC, or naive local without USE_TZ."""
    if not ms:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment if settings.USE_TZ else timezone.make_naive(moment)


def to_ms(moment: datetime) -> int:
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return int(moment.timestamp() * 1000)


@dataclass
class History:
    """The attempts so far: the record's latest delivery, plus one log line per attempt
    that did not succeed (a success costs no extra write)."""

    worker_ids: list[str] = field(default_factory=list)
    started_ms: list[int] = field(default_factory=list)
    error_paths: dict[int, str] = field(default_factory=dict)
    errors: list[Any] = field(default_factory=list)  # the framework's TaskErrors

    @classmethod
    def of(cls, job: AdminJobData, *, live: bool = True) -> History:
        """``live=False``: leave out the delivery running now (the runner adds itself)."""
        found, ended = cls(), set()
        for line in job.logs:
            if (m := _ENDED.match(line.message)) is not None:
                ended.add(int(m[1]))
                found.worker_ids.append(m[2])
                found.started_ms.append(int(m[3]))
                if m[4] != _CANCELLED:  # a timeout's own error names TaskTimeout
                    found.error_paths[int(m[1])] = m[4]
        if live and job.worker and job.last_run and _latest_unlogged(job, ended):
            found.worker_ids.append(job.worker)
            found.started_ms.append(job.last_run)
        found.errors = found._errors(job)
        return found

    def _errors(self, job: AdminJobData) -> list[Any]:
        errors = [TaskError(exception_class_path=self.error_paths.get(e.attempt)
                            or _engine_path(e.type), traceback=e.traceback)
                  for e in job.errors]
        if job.status == "cancelled" and not errors:  # e.g. skipped by a leading debounce
            reason = job.logs[-1].message if job.logs else "cancelled before it ran"
            errors.append(TaskError(exception_class_path=class_path(core_errors.JobCancelled),
                                    traceback=reason))
        return errors


def _engine_path(name: str) -> str:
    """A class path for an error the worker's log lines did not name (timeouts, crashes)."""
    if isinstance(getattr(core_errors, name, None), type):
        return f"{core_errors.__name__}.{name}"
    if isinstance(getattr(builtins, name, None), type):
        return f"builtins.{name}"
    return name


def is_task_call(job: AdminJobData) -> bool:
    data = job.state.data
    return isinstance(data, dict) and data.keys() >= CALL_KEYS


def task_of(job: AdminJobData) -> Any:
    """The framework ``Task`` the job calls, as it was enqueued (queue, priority, run_after)."""
    data = job.state.data
    try:
        found = import_string(job.state.name)
    except ImportError:
        found = None
    if not isinstance(found, Task):
        raise TaskResultDoesNotExist(f"job {job.id} calls {job.state.name!r}, which is not a "
                                     "task in this process (renamed or removed?)")
    return as_enqueued(found, job.state.queue, job.state.options, data)


def as_enqueued(task: Any, queue: str, options: dict[str, Any], data: dict[str, Any]) -> Any:
    """``task`` with the queue, priority, backend and run_after of the stored call."""
    run_after = data.get("run_after")
    return _as_enqueued(task, queue, int(options.get("priority", 0)), data["backend"],
                        None if run_after is None else int(run_after))


@lru_cache(maxsize=1024)
def _as_enqueued(task: Any, queue: str, priority: int, backend: str,
                 run_after_ms: int | None) -> Any:
    """Cached: ``using()`` validates the task again (signature inspection), per run."""
    changed = task.using(priority=priority, queue_name=queue, backend=backend)
    if run_after_ms is not None:  # using() skips None: only set when stored
        changed = changed.using(run_after=to_datetime(run_after_ms))
    return changed


def to_result(job: AdminJobData) -> Any:
    """The record as a ``TaskResult`` (raises ``TaskResultDoesNotExist`` for other jobs)."""
    if not is_task_call(job):
        raise TaskResultDoesNotExist(f"job {job.id} is not a Django task")
    data, history = job.state.data, History.of(job)
    status = STATUS.get(job.status, TaskResultStatus.READY)
    # one clock for both: the worker's, from its log lines (the record's last_run is
    # Redis's, taken just before the attempt starts)
    started = history.started_ms[0] if history.started_ms else job.last_run
    last = history.started_ms[-1] if history.started_ms else job.last_run
    finished = job.finished_at if status in (TaskResultStatus.SUCCESSFUL,
                                             TaskResultStatus.FAILED) else None
    result: Any = TaskResult(
        task=task_of(job), id=job.id, status=status,
        enqueued_at=to_datetime(int(data["enqueued_at"])),
        started_at=to_datetime(started), last_attempted_at=to_datetime(last),
        finished_at=to_datetime(finished), args=data["args"], kwargs=data["kwargs"],
        backend=data["backend"], errors=history.errors, worker_ids=history.worker_ids)
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", job.result)
    return result


def find_job(keys: Keys, job_id: str, queues: Sequence[str] | None) -> Plan[AdminJobData | None]:
    """The job ``job_id`` in any of ``queues`` (``None``: every known queue); one round trip
    for the records, plus one for the queue names when they are not known."""
    names = list(queues) if queues else (yield [ac.queue_names(keys)])[0]
    if not names:
        return None
    replies = yield [ac.read(keys.queue(q), [job_id], with_logs=True) for q in names]
    for [(fields, logs)] in replies:
        if fields:
            return decode(fields, logs)
    return None
