"""HandlerRegistry: which function handles which event in which queue.

The TaskManager registers handlers here; the Processor looks them up (and the
cron schedules in them). Neither needs the other to do it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import DuplicateHandler, InvalidOptions, QueueMismatch
from .options import validate_handler_options
from .policies import debounce
from .policies.cron import CronSpec
from .store.keys import validate_queue_name
from .types import HandlerOptions

Handler = Callable[..., Any]
#: ``resolver(queue, event)``: may register a handler for an event met at run time
Resolver = Callable[[str, str], bool]


@dataclass(frozen=True)
class HandlerEntry:
    event: str
    queue: str
    fn: Handler
    options: dict[str, Any]
    debounce: debounce.DebounceSpec | None = None
    repeat: CronSpec | None = None


@dataclass(frozen=True)
class HandlerSpec:
    """A handler's options, checked and parsed."""

    options: dict[str, Any]
    debounce: debounce.DebounceSpec | None
    repeat: CronSpec | None


def parse_handler_options(event: str, options: HandlerOptions | Mapping[str, Any] | None,
                          where: str | None = None) -> HandlerSpec:
    """Every rule a handler's options obey, run where they are written: by
    ``register_handler`` and, at import, by ``@handler`` (``where`` names it in errors),
    so a bad ``debounce`` or cron pattern never waits for a worker to start."""
    opts = validate_handler_options(event, options, where)
    return HandlerSpec(opts, debounce.DebounceSpec.parse(event, opts.get("debounce"), where),
                       CronSpec.parse(event, opts.get("repeat"), where))


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str], HandlerEntry] = {}
        self._queues_of: defaultdict[str, list[str]] = defaultdict(list)
        self._resolvers: dict[str | None, Resolver] = {}

    def register(self, event: str, handler: Handler, queue: str = "default",
                 options: HandlerOptions | None = None) -> HandlerEntry:
        if not isinstance(event, str) or not event:
            raise InvalidOptions(f"event must be a non-empty string, got {event!r}")
        validate_queue_name(queue)
        if not callable(handler):
            raise InvalidOptions(f"register_handler({event!r}): handler must be callable, "
                                 f"got {handler!r}")
        spec = parse_handler_options(event, options)
        existing = self._handlers.get((queue, event))
        if existing is not None and existing.fn is not handler:
            raise DuplicateHandler(
                f"event {event!r} in queue {queue!r} already has handler {_name(existing.fn)}; "
                f"cannot also register {_name(handler)}. Rename one event or use another queue.")
        entry = HandlerEntry(event, queue, handler, spec.options, spec.debounce, spec.repeat)
        self._handlers[(queue, event)] = entry
        if queue not in self._queues_of[event]:
            self._queues_of[event].append(queue)
        return entry

    def register_resolver(self, queue: str | None, resolver: Resolver) -> None:
        """Handlers found on demand (the Django Tasks backend imports a task by its path):
        on a miss for ``(queue, event)`` the resolver may register it and return True.
        ``queue=None`` covers every queue; a named queue counts as served. An emit of an
        event with a handler in another queue only asks it too (see :meth:`queue_mismatch`)."""
        if queue is not None:
            validate_queue_name(queue)
        self._resolvers[queue] = resolver

    def get(self, queue: str, event: str) -> HandlerEntry | None:
        entry = self._handlers.get((queue, event))
        if entry is None and self._resolvers:
            resolver = self._resolvers.get(queue) or self._resolvers.get(None)
            if resolver is not None and resolver(queue, event):
                entry = self._handlers.get((queue, event))
        return entry

    def declared(self, queue: str, event: str) -> HandlerEntry | None:
        """The handler registered for ``(queue, event)``, resolvers not asked (emit side)."""
        return self._handlers.get((queue, event))

    def queue_mismatch(self, event: str, queue: str | None) -> QueueMismatch:
        """The error for an emit of ``event`` to ``queue`` (``None``: none given) where it
        has no handler while it has one elsewhere: every process of a project registers
        the same handlers, so no worker would run the job; it would wait forever."""
        known = self.queues_of(event)
        where = f"emit({event!r})" if queue is None else f"emit({event!r}, queue={queue!r})"
        found = ", ".join(f"{q!r} ({_name(self._handlers[(q, event)].fn)})" for q in known)
        if len(known) > 1:
            return QueueMismatch(
                f"{where}: {event!r} has handlers in queues {found}, so no worker would run "
                f"a job in {queue or 'default'!r}; pass queue= one of them.")
        return QueueMismatch(
            f"{where}: the handler of {event!r} is registered in queue {found}, so no worker "
            f"would run this job in {queue!r} (it would wait forever). Leave queue out (it "
            f"goes to {known[0]!r}) or pass queue={known[0]!r}; to run it in {queue!r}, "
            f"register the handler there (@handler(..., queue={queue!r})).")

    def queues_of(self, event: str) -> list[str]:
        """The queues ``event`` has a handler in (where an emit without a queue goes)."""
        return self._queues_of.get(event, [])

    def events_in(self, queue: str) -> list[str]:
        return sorted(e for q, e in self._handlers if q == queue)

    @property
    def entries(self) -> list[HandlerEntry]:
        return list(self._handlers.values())

    @property
    def events(self) -> list[str]:
        return sorted(self._queues_of)

    @property
    def queues(self) -> list[str]:
        """Queues with a handler or a resolver (what a worker serves by default)."""
        named = {q for q in self._resolvers if q is not None}
        return sorted({q for q, _ in self._handlers} | named) or ["default"]


def _name(fn: Any) -> str:
    module = getattr(fn, "__module__", "?")
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"
