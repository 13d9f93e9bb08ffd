"""The Django layer's composition root: the process's TaskManager, and how it is built.

One TaskManager per process, built on first use from ``settings.REMQ`` with every
``@handler`` declaration registered (a sync handler wrapped in a request's database
hygiene); rebuilt when ``REMQ`` or ``TASKS`` changes (``override_settings``) or a
declaration is replaced. The optional parts plug in through hooks that
``AppConfig.ready`` registers (:mod:`django_remq.apps`): the gateway's event sink and
the Tasks backend. This module imports neither, so each of them may import it.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.db import close_old_connections
from django.dispatch import receiver

from .conf import get_settings
from .core import TaskManager
from .core.errors import DuplicateHandler
from .core.task_manager import ExposeServer
from .core.worker import affinity
from .core.worker.task import EventSink
from .decorators import registry
from .redis_clients import remq_connection

#: Makes a TaskManager's live-event sink from it (its connection and keys) as it is
#: built; None when there is nowhere to send events.
EventSinkFactory = Callable[[TaskManager], EventSink | None]
#: Called with each TaskManager built here, once its declared handlers are registered.
BuildHook = Callable[[TaskManager], None]


@dataclass
class _Hooks:
    event_sink: EventSinkFactory | None = None
    on_build: list[BuildHook] = field(default_factory=list)


_hooks = _Hooks()
_lock = threading.RLock()
_manager: TaskManager | None = None
_version = -1
_wrappers: weakref.WeakKeyDictionary[Callable[..., Any], Callable[..., Any]] = (
    weakref.WeakKeyDictionary())


def set_event_sink(factory: EventSinkFactory | None) -> None:
    """Where live task events go from the TaskManagers built from now on (the gateway's
    channel layer, set in ``AppConfig.ready``); None: nowhere."""
    _hooks.event_sink = factory


def add_build_hook(hook: BuildHook) -> None:
    """Call ``hook(tm)`` on every TaskManager built from now on (once per hook)."""
    if hook not in _hooks.on_build:
        _hooks.on_build.append(hook)


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
                       expose: EventSink | ExposeServer | None = None) -> TaskManager:
    """A new TaskManager from ``REMQ`` (the worker command builds its own with overrides);
    its event sink is ``expose`` when that is one, else the registered factory's."""
    conf = get_settings()
    # cron patterns tick in the project's time zone unless PROCESSOR says otherwise
    # the loop and sync handlers' threads share a core unless CPU_AFFINITY says otherwise
    options = {"timezone": django_settings.TIME_ZONE or "UTC",
               "pin_threads": conf.cpu_affinity == affinity.THREADS, **conf.processor,
               **(processor or {})}
    tm = TaskManager(remq_connection(conf), ctx=conf.build_ctx(),
                     concurrency=concurrency or conf.concurrency,
                     processor=options or None,  # type: ignore[arg-type]
                     expose=expose, make_sink=_hooks.event_sink, prefix=conf.prefix,
                     wait_replicas=conf.wait_replicas, wait_timeout_ms=conf.wait_timeout_ms,
                     max_payload_bytes=conf.max_payload_bytes)
    register_declared(tm)
    for hook in _hooks.on_build:
        hook(tm)
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
