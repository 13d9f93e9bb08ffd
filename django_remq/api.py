"""What Django code calls: ``emit``/``aemit``/``emit_many`` and ``get_task_manager``.

One TaskManager per process, built on first use from ``settings.REMQ`` with every
``@handler`` declaration registered; rebuilt when ``REMQ`` changes
(``override_settings``) or a declaration is replaced.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from functools import partial, wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.db import close_old_connections, transaction
from django.dispatch import receiver

from .backends.wiring import register_task_backends
from .conf import get_settings
from .core import TaskManager, jsonutil
from .core.errors import DuplicateHandler
from .core.options import check_emit_item, new_job_id
from .core.task_manager import ExposeServer
from .core.worker.task import EventSink
from .decorators import registry

_lock = threading.RLock()
_manager: TaskManager | None = None
_version = -1
_wrappers: weakref.WeakKeyDictionary[Callable[..., Any], Callable[..., Any]] = (
    weakref.WeakKeyDictionary())


def get_task_manager() -> TaskManager:
    """The process-wide TaskManager, with every declared handler registered."""
    global _manager, _version
    with _lock:
        if _manager is not None and _version != registry.version:
            try:
                register_declared(_manager)
                _version = registry.version
            except DuplicateHandler:
                if _manager.processor is not None:  # running: never swap it underneath
                    raise
                reset_task_manager()
        if _manager is None:
            _manager = build_task_manager()
            _version = registry.version
        return _manager


def build_task_manager(*, concurrency: int | None = None,
                       processor: Mapping[str, Any] | None = None,
                       expose: EventSink | ExposeServer | int | None = None) -> TaskManager:
    """A new TaskManager from ``REMQ`` (the worker command builds its own with overrides)."""
    conf = get_settings()
    # cron patterns tick in the project's time zone unless PROCESSOR says otherwise
    options = {"timezone": django_settings.TIME_ZONE or "UTC", **conf.processor,
               **(processor or {})}
    tm = TaskManager.init(db=conf.connection_url, ctx=conf.build_ctx(),
                          concurrency=concurrency or conf.concurrency,
                          processor=options or None,  # type: ignore[arg-type]
                          expose=expose, prefix=conf.prefix, cluster=conf.cluster,
                          wait_replicas=conf.wait_replicas, wait_timeout_ms=conf.wait_timeout_ms,
                          max_payload_bytes=conf.max_payload_bytes)
    if tm.expose is None:
        from .consumers.delivery import sink_for

        tm.expose = sink_for(tm)  # live events to the WebSocket gateway, if a layer is set
    register_declared(tm)
    register_task_backends(tm)  # Django Tasks (TASKS) run on this TaskManager's workers too
    return tm


def register_declared(tm: TaskManager) -> None:
    for decl in registry:
        tm.register_handler(decl.event, django_handler(decl.fn), decl.queue,
                            decl.options)  # type: ignore[arg-type]


def reset_task_manager() -> None:
    """Drop the process-wide TaskManager; the next call builds a new one."""
    global _manager, _version
    with _lock:
        if _manager is not None and _manager.processor is None:
            _manager.conn.close()
        _manager, _version = None, -1


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("REMQ", "TASKS"):
        reset_task_manager()


def django_handler(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a sync handler a request's DB hygiene: stale connections are closed before
    and after, so a long-lived worker survives a database restart or CONN_MAX_AGE."""
    if inspect.iscoroutinefunction(fn):
        return fn
    cached = _wrappers.get(fn)
    if cached is not None:
        return cached

    @wraps(fn)
    def wrapped(task: Any, ctx: Any) -> Any:
        close_old_connections()
        try:
            return fn(task, ctx)
        finally:
            close_old_connections()

    _wrappers[fn] = wrapped
    return wrapped


# -- emitting ---------------------------------------------------------------------


def emit(event: str, data: Any = None, queue: str | None = None,
         options: Mapping[str, Any] | None = None, *, on_commit: bool | None = None,
         using: str | None = None) -> str:
    """Enqueue a task; returns its id at once.

    With ``on_commit=True`` (default: ``REMQ['EMIT_ON_COMMIT']``) the enqueue waits for
    the current transaction to commit, so a worker never reads rows that are not
    there yet, and is dropped on rollback. The id is known at once either way.
    """
    if not _deferred(on_commit):  # the engine's own emit: it checks as much, at less cost
        return get_task_manager().emit(event, queue, data, options)
    item = {"event": event, "data": data, "queue": queue, "options": options}
    return _emit([item], f"emit({event!r})", True, using)[0]


async def aemit(event: str, data: Any = None, queue: str | None = None,
                options: Mapping[str, Any] | None = None, *, on_commit: bool | None = None,
                using: str | None = None) -> str:
    """Async twin of :func:`emit`."""
    if not _deferred(on_commit):
        return await get_task_manager().aemit(event, queue, data, options)
    item = {"event": event, "data": data, "queue": queue, "options": options}
    return (await _aemit([item], f"emit({event!r})", True, using))[0]


def emit_many(items: Iterable[Mapping[str, Any]], *, on_commit: bool | None = None,
              using: str | None = None) -> list[str]:
    """Enqueue many tasks in few round trips; ids in input order."""
    return _emit(items, None, on_commit, using)


async def aemit_many(items: Iterable[Mapping[str, Any]], *, on_commit: bool | None = None,
                     using: str | None = None) -> list[str]:
    return await _aemit(items, None, on_commit, using)


def _emit(items: Iterable[Mapping[str, Any]], where: str | None, on_commit: bool | None,
          using: str | None) -> list[str]:
    """Every sync emit: checked now; written now, or when the transaction commits."""
    batch = _checked(items, where)
    tm = get_task_manager()
    if not _deferred(on_commit):
        return tm.emit_many(batch)
    for item in batch:  # fix the ids and the data now; validate now, not at commit
        opts = dict(item.get("options") or {})
        item["options"] = {**opts, "id": opts.get("id") or new_job_id()}
        item["data"] = jsonutil.loads(jsonutil.dumps(item.get("data")))
        tm.prepare(item.get("event"), item.get("queue"), item["data"],  # type: ignore[arg-type]
                   item["options"])
    transaction.on_commit(partial(tm.emit_many, batch), using=using)
    return [str(item["options"]["id"]) for item in batch]


async def _aemit(items: Iterable[Mapping[str, Any]], where: str | None, on_commit: bool | None,
                 using: str | None) -> list[str]:
    if _deferred(on_commit):  # transactions live in the sync world (sync_to_async's thread)
        return await sync_to_async(_emit)(list(items), where, True, using)
    return await get_task_manager().aemit_many(_checked(items, where))


def _checked(items: Iterable[Mapping[str, Any]], where: str | None) -> list[dict[str, Any]]:
    """The items as fresh dicts, each with JSON data (``where`` names a single emit)."""
    batch = []
    for n, item in enumerate(items):
        check_emit_item(n, item)
        batch.append(dict(item))
        check_json(where or f"emit_many item {n} ({item.get('event')!r})", item.get("data"))
    return batch



def _deferred(on_commit: bool | None) -> bool:
    return get_settings().emit_on_commit if on_commit is None else on_commit


def check_json(where: str, data: Any) -> None:
    """Raise ``TypeError`` naming the first value of ``data`` JSON cannot hold (the
    engine's own check, run before any Django-side work such as on_commit)."""
    jsonutil.dumps_data(data, where)
