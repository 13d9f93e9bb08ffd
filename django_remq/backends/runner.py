"""The worker side: a Django task is a remq job whose event is the task's module path.

Each task gets a handler (cached per function, so registering it again is a no-op):
async task functions run natively on the worker's loop, plain ones in its thread pool
with a request's DB hygiene. The handler rebuilds the ``TaskResult``, sends
``task_started`` / ``task_finished`` as the framework documents, passes a ``TaskContext``
to ``takes_context`` tasks, and returns the JSON-normalised value as the job's result.
Failures are re-raised so remq's retry policy (and DLQ) applies.
"""

from __future__ import annotations

import asyncio
import logging
import re
import traceback
import weakref
from collections.abc import Callable, Collection
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.utils import timezone
from django.utils.module_loading import import_string

from ..api import get_task_manager
from ..core import TaskManager, jsonutil
from ..core.options import check_payload
from ..core.sdk.plan import adrive, drive
from .compat import (
    Task,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
    normalize_json,
    task_finished,
    task_started,
)
from .options import task_policies
from .results import (
    History,
    as_enqueued,
    class_path,
    ended_line,
    find_job,
    to_datetime,
)

log = logging.getLogger("django_remq.tasks")

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_runners: dict[tuple[str, bool], Callable[..., Any]] = {}
_registered: weakref.WeakKeyDictionary[TaskManager, set[tuple[str, str]]] = (
    weakref.WeakKeyDictionary())


class TaskAborted(Exception):
    """A task raised a ``BaseException`` (``SystemExit``...): recorded as a failure."""


def register_task(tm: TaskManager, task: Any, queue: str | None = None) -> None:
    """Make ``tm`` run ``task`` in ``queue`` (default: the task's), once per process."""
    queue = queue or task.queue_name
    key = (queue, task.module_path)
    done = _registered.setdefault(tm, set())
    if key in done:
        return
    options = {**task.get_backend().policy_defaults(), **task_policies(task)}
    tm.register_handler(task.module_path, runner_for(task), queue,
                        options)  # type: ignore[arg-type]
    done.add(key)


def resolver(tm: TaskManager, aliases: Collection[str]) -> Callable[[str, str], bool]:
    """Finds a task met in a served queue by importing its path; only a task of one of
    ``aliases`` (the RemqBackends of TASKS) is accepted, so an event name cannot make the
    worker call anything else."""
    def resolve(queue: str, event: str) -> bool:
        if not _DOTTED.match(event):
            return False
        try:
            found = import_string(event)
        except ImportError:
            return False
        except Exception:
            log.exception("importing task %s failed", event)
            return False
        if not isinstance(found, Task) or found.backend not in aliases:
            return False
        register_task(tm, found, queue)
        return True

    return resolve


def runner_for(task: Any) -> Callable[..., Any]:
    """The handler of ``task``: one per function, so its identity is stable."""
    is_async = iscoroutinefunction(task.func)
    key = (task.module_path, is_async)
    if key in _runners:
        return _runners[key]
    run: Callable[..., Any]
    if is_async:
        async def run(job: Any, ctx: Any) -> Any:
            attempt = await _astart(task, job, ctx)
            return await _afinish(attempt, attempt.call())
    else:
        def run(job: Any, ctx: Any) -> Any:
            close_old_connections()
            try:
                attempt = _start(task, job, ctx)
                return attempt.finish(attempt.call)
            finally:
                close_old_connections()
    setattr(run, "__wrapped__", task.func)  # noqa: B010  (the worker's banner names it)
    _runners[key] = run
    return run


class Attempt:
    """One run of a task: its ``TaskResult`` as the framework sees it."""

    def __init__(self, task: Any, job: Any, history: History, worker_id: str) -> None:
        data = job.data
        self.job = job
        self.task = as_enqueued(task, job.queue, job.options, data)
        self.backend_cls = type(self.task.get_backend())
        self.worker_id = worker_id
        now = timezone.now()
        self.started_ms = int(now.timestamp() * 1000)
        self.result: Any = TaskResult(
            task=self.task, id=job.id, status=TaskResultStatus.RUNNING,
            enqueued_at=to_datetime(int(data["enqueued_at"])),
            started_at=to_datetime(history.started_ms[0]) if history.started_ms else now,
            last_attempted_at=now, finished_at=None, args=data["args"], kwargs=data["kwargs"],
            backend=data["backend"], errors=list(history.errors),
            worker_ids=[*history.worker_ids, worker_id])

    def call(self) -> Any:
        args = self.result.args
        if self.task.takes_context:
            args = [TaskContext(task_result=self.result), *args]
        return self.task.func(*args, **self.result.kwargs)

    def succeeded(self, value: Any) -> Any:
        """The framework's result of a return value; one the job could not store (over
        ``MAX_PAYLOAD_BYTES``) raises here, so the task ends FAILED, signal included."""
        normalised = normalize_json(value)
        limit = get_task_manager().max_payload_bytes
        if normalised is not None and limit is not None:
            check_payload(jsonutil.dumps(normalised), limit,
                          f"the result of task {self.task.name!r} (job {self.job.id})")
        self._set(status=TaskResultStatus.SUCCESSFUL, finished_at=timezone.now(),
                  _return_value=normalised)
        return normalised

    def failed(self, exc: BaseException) -> None:
        self.result.errors.append(TaskError(exception_class_path=class_path(type(exc)),
                                            traceback="".join(traceback.format_exception(exc))))
        self._set(status=TaskResultStatus.FAILED, finished_at=timezone.now())
        self.stopped(exc)

    def stopped(self, exc: BaseException) -> None:
        """Leave the attempt in the job's log (worker, start, exception): a success needs
        no line, the record has its worker and start."""
        self.job.logger(ended_line(self.job.attempt, self.worker_id, self.started_ms, exc))

    def finish(self, call: Callable[[], Any]) -> Any:
        """Run the call in a thread (sync tasks) and send ``task_finished`` either way."""
        try:
            value = self.succeeded(call())
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise
        except BaseException as exc:
            self.failed(exc)
            task_finished.send(self.backend_cls, task_result=self.result)
            if isinstance(exc, Exception):
                raise
            raise TaskAborted(f"{class_path(type(exc))}: {exc}") from exc
        task_finished.send(self.backend_cls, task_result=self.result)
        return value

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self.result, name, value)


def _manager(ctx: Any) -> TaskManager:
    """The process's TaskManager (its connection pools)."""
    return get_task_manager()


def _worker_id(ctx: Any) -> str:
    """The remq worker id (as in ``Sdk.get_workers()`` and the record's ``worker``)."""
    return str(getattr(ctx, "worker_id", "") or "unknown")


def _start(task: Any, job: Any, ctx: Any) -> Attempt:
    history = History()
    if job.attempt > 1:  # earlier attempts ran elsewhere: read them back (retries only)
        tm = _manager(ctx)
        record = drive(tm.conn.raw_sync, find_job(tm.keys, job.id, [job.queue]))
        history = History.of(record, live=False) if record is not None else history
    attempt = Attempt(task, job, history, _worker_id(ctx))
    task_started.send(attempt.backend_cls, task_result=attempt.result)
    return attempt


async def _astart(task: Any, job: Any, ctx: Any) -> Attempt:
    history = History()
    if job.attempt > 1:
        tm = _manager(ctx)
        record = await adrive(tm.conn.raw_aio, find_job(tm.keys, job.id, [job.queue]))
        history = History.of(record, live=False) if record is not None else history
    attempt = Attempt(task, job, history, _worker_id(ctx))
    await asend_signal(task_started, attempt.backend_cls, attempt.result)
    return attempt


async def _afinish(attempt: Attempt, call: Any) -> Any:
    try:
        value = attempt.succeeded(await call)
    except asyncio.CancelledError as exc:  # a timeout, a cancel, or the worker stopping
        attempt.stopped(exc)
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        attempt.failed(exc)
        await sync_to_async(_send_failed)(attempt, exc)
        if isinstance(exc, Exception):
            raise
        raise TaskAborted(f"{class_path(type(exc))}: {exc}") from exc
    await asend_signal(task_finished, attempt.backend_cls, attempt.result)
    return value


#: the framework's own receivers (they only log): safe to call on the event loop
FRAMEWORK_RECEIVERS = frozenset({"django.tasks.signals", "django_tasks.signals"})


async def asend_signal(signal: Any, sender: type, result: Any) -> None:
    """``Signal.asend`` runs each sync receiver in a thread (they may use the ORM): one
    hop each, per task. When the only receivers are the framework's log ones, call them
    here instead; any other receiver gets ``asend``'s treatment."""
    try:
        sync_receivers, async_receivers = signal._live_receivers(sender)
    except Exception:  # a Django without this (private) helper: always the safe way
        sync_receivers, async_receivers = None, None
    if sync_receivers is not None and not async_receivers and all(
            getattr(r, "__module__", None) in FRAMEWORK_RECEIVERS for r in sync_receivers):
        signal.send(sender, task_result=result)
    else:
        await signal.asend(sender, task_result=result)


def _send_failed(attempt: Attempt, exc: BaseException) -> None:
    """Django's own receiver logs ``sys.exc_info()``: send from inside a handler, in a
    thread (sync receivers may use the ORM)."""
    try:
        raise exc
    except BaseException:
        task_finished.send(attempt.backend_cls, task_result=attempt.result)


__all__ = ["TaskAborted", "asend_signal", "register_task", "resolver", "runner_for"]
