"""A remq job record read back as the framework's ``TaskResult``, from any process.

The record already holds the status, the timestamps and one error per failed attempt
(with its traceback). What the framework wants beyond that -- which worker ran each
attempt, when the first one started, the exception's full class path -- the worker
writes as one log line per attempt start and per failure (:func:`started_line`,
:func:`failed_line`); they read well in the admin pages too.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from ..core import errors as core_errors
from ..core.sdk import ops as ac
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
_STARTED = re.compile(r"^django task: attempt (\d+) started on worker (\S+)$")
_FAILED = re.compile(r"^django task: attempt (\d+) failed with ([\w.]+)")


def started_line(attempt: int, worker_id: str) -> str:
    return f"django task: attempt {attempt} started on worker {worker_id}"


def failed_line(attempt: int, exc: BaseException) -> str:
    return f"django task: attempt {attempt} failed with {class_path(type(exc))}: {exc}"[:2000]


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
    """The attempts so far, from the worker's log lines."""

    worker_ids: list[str] = field(default_factory=list)
    started_ms: list[int] = field(default_factory=list)
    error_paths: dict[int, str] = field(default_factory=dict)
    errors: list[Any] = field(default_factory=list)  # the framework's TaskErrors

    @classmethod
    def of(cls, job: AdminJobData) -> History:
        found = cls()
        for line in job.logs:
            if (m := _STARTED.match(line.message)) is not None:
                found.worker_ids.append(m[2])
                found.started_ms.append(line.timestamp)
            elif (m := _FAILED.match(line.message)) is not None:
                found.error_paths[int(m[1])] = m[2]
        if job.status == "processing" and job.worker and (
                not found.worker_ids or found.worker_ids[-1] != job.worker):
            found.worker_ids.append(job.worker)  # this attempt's line is not written yet
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
    changed = task.using(priority=int(options.get("priority", 0)), queue_name=queue,
                         backend=data["backend"])
    if data.get("run_after") is not None:  # using() skips None: only set when stored
        changed = changed.using(run_after=to_datetime(int(data["run_after"])))
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
