"""What Django code calls to enqueue: ``emit``/``aemit``/``emit_many``/``aemit_many``.

Each takes what the engine's emits take (``emit(event, data, queue, options)``), on the
process's TaskManager (:func:`django_remq.get_task_manager`), plus ``on_commit``: the
jobs are then prepared at the call (validated, their ids fixed, their data encoded, so
a later change to the caller's data cannot reach them) and written when the
transaction commits (:meth:`~django_remq.core.TaskManager.enqueue`), or dropped on
rollback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction

from .api import get_task_manager
from .conf import get_settings
from .core import TaskManager
from .core.store.calls import NewJob


def emit(event: str, data: Any = None, queue: str | None = None,
         options: Mapping[str, Any] | None = None, *, on_commit: bool | None = None,
         using: str | None = None) -> str:
    """Enqueue a task; returns its id at once.

    With ``on_commit=True`` (default: ``REMQ['EMIT_ON_COMMIT']``) the enqueue waits for
    the current transaction to commit, so a worker never reads rows that are not
    there yet, and is dropped on rollback. The id is known at once either way.
    """
    tm = get_task_manager()
    if not _deferred(on_commit):
        return tm.emit(event, data, queue, options)
    return _at_commit(tm, [tm.prepare(event, queue, data, options)], using)[0]


async def aemit(event: str, data: Any = None, queue: str | None = None,
                options: Mapping[str, Any] | None = None, *, on_commit: bool | None = None,
                using: str | None = None) -> str:
    """Async twin of :func:`emit`."""
    if not _deferred(on_commit):
        return await get_task_manager().aemit(event, data, queue, options)
    # transactions live in the sync world (sync_to_async's thread)
    return await sync_to_async(emit)(event, data, queue, options, on_commit=True, using=using)


def emit_many(items: Iterable[Mapping[str, Any]], *, on_commit: bool | None = None,
              using: str | None = None) -> list[str]:
    """Enqueue many tasks in few round trips; ids in input order."""
    tm = get_task_manager()
    if not _deferred(on_commit):
        return tm.emit_many(items)
    return _at_commit(tm, list(tm.prepare_many(items)), using)


async def aemit_many(items: Iterable[Mapping[str, Any]], *, on_commit: bool | None = None,
                     using: str | None = None) -> list[str]:
    """Async twin of :func:`emit_many`."""
    if not _deferred(on_commit):
        return await get_task_manager().aemit_many(items)
    return await sync_to_async(emit_many)(list(items), on_commit=True, using=using)


def _at_commit(tm: TaskManager, prepared: Sequence[tuple[str, NewJob]],
               using: str | None) -> list[str]:
    """Write prepared jobs when the transaction commits; their ids now."""
    by_queue: dict[str, list[NewJob]] = {}
    for queue, job in prepared:
        by_queue.setdefault(queue, []).append(job)

    def write() -> None:
        for queue, jobs in by_queue.items():
            tm.enqueue(queue, jobs)

    transaction.on_commit(write, using=using)
    return [job.id for _, job in prepared]


def _deferred(on_commit: bool | None) -> bool:
    return get_settings().emit_on_commit if on_commit is None else on_commit
