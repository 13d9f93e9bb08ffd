"""``RemqBackend``: Django's Tasks framework on remq.

``TASKS = {"default": {"BACKEND": "django_remq.backends.RemqBackend", "QUEUES": [...],
"OPTIONS": {"attempts": 3, ...}}}``. The framework makes one backend instance per
thread; they all share the process's TaskManager (:func:`django_remq.get_task_manager`)
and its connection pools, so an instance holds no connection of its own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from django.apps import apps
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from ..api import get_task_manager
from ..core.errors import InvalidOptions, PayloadTooLarge
from ..core.options import new_job_id, too_large
from ..core.sdk.plan import adrive, drive
from ..core.store.keys import validate_queue_name
from .arguments import unsupported_argument
from .compat import (
    BaseTaskBackend,
    InvalidTask,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
)
from .options import (
    RemqTask,
    option_problems,
    remember,
    remember_unlisted,
    task_policies,
    unlisted_queue,
    unlisted_tasks,
    validate_policies,
)
from .results import find_job, to_ms, to_result
from .runner import asend_signal, register_task


class RemqBackend(BaseTaskBackend):  # type: ignore[misc]
    """Runs tasks on remq workers (``manage.py runworker_remq``), with results in Redis."""

    task_class = RemqTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True  # orders the queue: the job runs on its priority lane

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self._defaults: dict[str, Any] | None = None
        self._queues_set = "QUEUES" in params

    # -- validation -------------------------------------------------------------------

    def validate_task(self, task: Any) -> None:
        if self.queues and task.queue_name not in self.queues:
            self._validate_unlisted(task)
        else:
            super().validate_task(task)
        try:
            validate_queue_name(task.queue_name)
        except ValueError as exc:
            raise InvalidTask(f"{task.module_path}: {exc}") from None
        try:
            validate_policies(f"@task on {task.module_path}", task_policies(task))
        except InvalidOptions as exc:
            raise InvalidTask(str(exc)) from None
        remember(task)

    def _validate_unlisted(self, task: Any) -> None:
        """A queue QUEUES does not list. While the apps load (an app's ``tasks`` module
        imported by ``django.setup()``) raising would break every ``manage.py`` command,
        ``check`` included, with a traceback: ``check()`` reports it instead (remq.E105)
        and enqueueing it still fails. Every other rule applies as usual."""
        problem = unlisted_queue(self.alias, task, self.queues, self._queues_set)
        if apps.ready:
            raise InvalidTask(f"Queue {task.queue_name!r} is not valid for backend "
                              f"{self.alias!r}: {problem.msg} {problem.hint}")
        remember_unlisted(task)
        any_queue = copy.copy(self)  # the framework's rules without its queue rule
        any_queue.queues = set()
        super(RemqBackend, any_queue).validate_task(task)

    def policy_defaults(self) -> dict[str, Any]:
        """OPTIONS, validated once (``check()`` reports the same problems with hints)."""
        if self._defaults is None:
            problems = option_problems(self.alias, self.options, self.queues)
            if problems:
                raise ImproperlyConfigured(f"{problems[0].msg} {problems[0].hint}")
            self._defaults = dict(self.options)
        return self._defaults

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        found = option_problems(self.alias, self.options, self.queues)
        found += [unlisted_queue(self.alias, task, self.queues, self._queues_set)
                  for task in unlisted_tasks(self.alias)
                  if self.queues and task.queue_name not in self.queues]
        return [checks.Error(p.msg, hint=p.hint, id=p.id, obj=f"settings.TASKS[{self.alias!r}]")
                for p in found]

    # -- enqueueing -------------------------------------------------------------------

    def _prepare(self, task: Any, args: Sequence[Any], kwargs: Mapping[str, Any]
                 ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        self.validate_task(task)
        now = timezone.now()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as stored: ms
        try:
            result: Any = TaskResult(
                task=task, id=new_job_id(), status=TaskResultStatus.READY, enqueued_at=now,
                started_at=None, last_attempted_at=None, finished_at=None, args=args,
                kwargs=kwargs, backend=self.alias, errors=[], worker_ids=[])  # normalises
        except (TypeError, ValueError) as exc:  # the framework's bare "Unsupported type"
            kind = TypeError if isinstance(exc, TypeError) else ValueError
            raise kind(unsupported_argument(task, args, kwargs, exc)) from None
        run_after = to_ms(task.run_after) if task.run_after is not None else None
        data = {"args": result.args, "kwargs": result.kwargs, "backend": self.alias,
                "enqueued_at": to_ms(now), "run_after": run_after}
        options: dict[str, Any] = {"id": result.id, "priority": task.priority}
        if run_after is not None:
            options["delay_until"] = run_after
        register_task(get_task_manager(), task)
        return result, data, options

    def enqueue(self, task: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Store the call as a job (at once: wrap in ``transaction.on_commit`` to wait)."""
        result, data, options = self._prepare(task, args, kwargs)
        try:
            job_id = get_task_manager().emit(task.module_path, data, task.queue_name, options)
        except PayloadTooLarge as exc:
            raise _too_large(task, exc) from None
        result = _with_id(result, job_id)
        task_enqueued.send(type(self), task_result=result)
        return result

    async def aenqueue(self, task: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        result, data, options = self._prepare(task, args, kwargs)
        try:
            job_id = await get_task_manager().aemit(task.module_path, data, task.queue_name,
                                                    options)
        except PayloadTooLarge as exc:
            raise _too_large(task, exc) from None
        result = _with_id(result, job_id)
        await asend_signal(task_enqueued, type(self), result)
        return result

    # -- results ----------------------------------------------------------------------

    def get_result(self, result_id: str) -> Any:
        tm = get_task_manager()
        job = drive(tm.conn.raw_sync, find_job(tm.keys, str(result_id), self._lookup_queues()))
        if job is None:
            raise TaskResultDoesNotExist(result_id)
        return to_result(job)

    async def aget_result(self, result_id: str) -> Any:
        tm = get_task_manager()
        job = await adrive(tm.conn.raw_aio, find_job(tm.keys, str(result_id),
                                                     self._lookup_queues()))
        if job is None:
            raise TaskResultDoesNotExist(result_id)
        return to_result(job)

    def _lookup_queues(self) -> list[str] | None:
        """This backend's queues; ``None`` (every queue) when QUEUES allows any."""
        return sorted(self.queues) if self.queues else None


def _too_large(task: Any, exc: PayloadTooLarge) -> PayloadTooLarge:
    """The engine's refusal in the words of a task call (its arguments, not "data")."""
    what = f"{task.module_path}.enqueue(): the call (its arguments, as stored)"
    return PayloadTooLarge(too_large(what, exc.size, exc.limit), exc.size, exc.limit)


def _with_id(result: Any, job_id: str) -> Any:
    """A trailing debounce merges the call into the pending job: that id is the result."""
    if job_id != result.id:
        object.__setattr__(result, "id", job_id)
    return result
