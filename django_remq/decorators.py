"""``@handler``: declare a task handler where it is written (an app's ``tasks.py``).

Declaring only records the function and its options in :data:`registry`, after
validating them (a typo fails at import, not on a worker at 3 a.m.). The
process-wide TaskManager registers every declaration when it is built
(:func:`django_remq.get_task_manager`). The function itself is returned
unchanged, so it can still be called directly in tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from .core.errors import InvalidOptions
from .core.handlers import parse_handler_options
from .core.store.keys import validate_queue_name
from .errors import DuplicateHandlerDeclared, ImproperlyConfiguredRemq, InvalidHandlerOptions

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Declaration:
    event: str
    queue: str
    fn: Callable[..., Any]
    options: dict[str, Any] = field(default_factory=dict)
    expose: bool = False  # WebSocket clients may emit it (when GATEWAY has no allowed_events)

    @property
    def fn_name(self) -> str:
        return qualified_name(self.fn)


class Registry:
    """Every ``@handler`` declared in this process, keyed by (queue, event)."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Declaration] = {}
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change, so a built TaskManager can catch up

    def add(self, decl: Declaration) -> None:
        with self._lock:
            key = (decl.queue, decl.event)
            old = self._items.get(key)
            # the same function declared again (a module imported twice, a reload) replaces
            if old is not None and old.fn_name != decl.fn_name:
                raise DuplicateHandlerDeclared(
                    f"event {decl.event!r} in queue {decl.queue!r} is declared twice: by "
                    f"{old.fn_name} and by {decl.fn_name}. Rename one event, or put one in "
                    "another queue (@handler(..., queue='other')).")
            self._items[key] = decl
            self.version += 1

    def remove(self, queue: str, event: str) -> None:
        with self._lock:
            if self._items.pop((queue, event), None) is not None:
                self.version += 1

    def __iter__(self) -> Iterator[Declaration]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.version += 1


registry = Registry()


@overload
def handler(event: F, /) -> F: ...


@overload
def handler(event: str | None = None, /, *, queue: str = "default", attempts: int | None = None,
            retry_delay_ms: int | None = None, debounce: Any = None, repeat: Any = None,
            timeout_ms: int | None = None, priority: int | None = None, expose: bool = False,
            **options: Any) -> Callable[[F], F]: ...


def handler(event: Any = None, /, *, queue: str = "default", attempts: int | None = None,
            retry_delay_ms: int | None = None, debounce: Any = None, repeat: Any = None,
            timeout_ms: int | None = None, priority: int | None = None, expose: bool = False,
            **options: Any) -> Any:
    """Declare ``fn(task, ctx)`` (sync or async) as the handler of ``event``.

    ``@handler`` alone uses the function's name as the event. Other keywords are
    checked like ``register_handler(options=...)``, so a processor setting written
    here (``should_retry``...) is an error that says where it belongs. ``expose=True``
    lets WebSocket clients emit the event when ``GATEWAY['allowed_events']`` is not set.
    """
    named = {"attempts": attempts, "retry_delay_ms": retry_delay_ms, "debounce": debounce,
             "repeat": repeat, "timeout_ms": timeout_ms, "priority": priority}
    opts = {**{k: v for k, v in named.items() if v is not None}, **options}

    def decorate(fn: F) -> F:
        name = event if isinstance(event, str) else getattr(fn, "__name__", None)
        declare(name, fn, queue=queue, options=opts, expose=expose)
        return fn

    if callable(event):
        return decorate(event)
    if event is not None and not isinstance(event, str):
        raise ImproperlyConfiguredRemq(f"@handler: the event name must be a string, got "
                                       f"{event!r}.")
    return decorate


def declare(event: Any, fn: Callable[..., Any], *, queue: str = "default",
            options: dict[str, Any] | None = None, expose: bool = False) -> Declaration:
    """What ``@handler`` does, as a function (for handlers built at run time)."""
    if not isinstance(event, str) or not event:
        raise ImproperlyConfiguredRemq(f"@handler on {qualified_name(fn)}: the event name must "
                                       f"be a non-empty string, got {event!r}.")
    if not callable(fn):
        raise ImproperlyConfiguredRemq(f"@handler({event!r}) must decorate a function, got "
                                       f"{fn!r}.")
    try:
        validate_queue_name(queue)
    except ValueError as exc:
        raise ImproperlyConfiguredRemq(f"@handler({event!r}) on {qualified_name(fn)}: "
                                       f"{exc}") from None
    try:  # the checks register_handler runs on a worker, run now: a mistake fails at import
        spec = parse_handler_options(event, options, f"@handler({event!r}) on "
                                                     f"{qualified_name(fn)}")
    except InvalidOptions as exc:
        raise InvalidHandlerOptions(str(exc)) from None
    if not isinstance(expose, bool):
        raise ImproperlyConfiguredRemq(f"@handler({event!r}) on {qualified_name(fn)}: expose must "
                                       f"be True or False, got {expose!r}.")
    decl = Declaration(event, queue, fn, spec.options, expose)
    registry.add(decl)
    return decl


def qualified_name(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
