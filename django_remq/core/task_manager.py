"""TaskManager: the engine's front door (the original remq's ``TaskManager``).

Holds the handler registry, emits tasks, pauses queues, and runs a Processor
when this process is a worker. Usable without Django: the Django layer builds
one from ``settings.REMQ``.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import jsonutil
from .errors import DuplicateHandler, InvalidOptions, UnknownEventWarning
from .options import (
    check_emit_item,
    run_at_ms,
    validate_emit_options,
    validate_handler_options,
)
from .policies import debounce
from .policies.cron import CronSpec
from .settings import ProcessorSettings
from .store import ops
from .store.connection import Connection, RedisLike
from .store.keys import Keys, validate_queue_name
from .store.ops import NewJob
from .store.records import emit_fields
from .store.scripts import Cmd, Step, arun_many, run_many
from .types import EmitOptions, HandlerOptions, ProcessorOptions
from .worker.processor import Processor
from .worker.task import EventSink

Handler = Callable[..., Any]
#: Serves the WebSocket gateway on the running loop for ``expose=PORT``; returns its
#: closer. Set by the Django layer (django_remq.consumers), so the engine stays Django-free.
GatewayServer = Callable[["TaskManager", int], Awaitable[Callable[[], Awaitable[None]]]]
#: ``resolver(queue, event)``: may register a handler for an event met at run time
Resolver = Callable[[str, str], bool]
EMIT_CHUNK = 1000
EMIT_ITEM_KEYS = frozenset({"event", "queue", "data", "options"})


@dataclass(frozen=True)
class HandlerEntry:
    event: str
    queue: str
    fn: Handler
    options: dict[str, Any]
    debounce: debounce.DebounceSpec | None = None
    repeat: CronSpec | None = None


class TaskManager:
    """Create with :meth:`init` (the original remq's ``TaskManager.init(options)``)."""

    gateway_server: GatewayServer | None = None

    def __init__(self, conn: Connection, *, ctx: Mapping[str, Any] | None = None,
                 concurrency: int = 1, processor: ProcessorOptions | None = None,
                 expose: EventSink | int | None = None, prefix: str = "remq") -> None:
        if not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidOptions(f"concurrency must be an int >= 1, got {concurrency!r}")
        # expose: where live events go (an EventSink), or the original's port to serve
        # the WebSocket gateway on from this worker
        self.expose_port = _port(expose) if isinstance(expose, int) else None
        self._close_gateway: Callable[[], Awaitable[None]] | None = None
        self.conn = conn
        self.ctx = dict(ctx or {})
        self.concurrency = concurrency
        self.settings = ProcessorSettings.from_options(processor)
        self.expose: EventSink | None = None if isinstance(expose, int) else expose
        self.keys = Keys(prefix)
        self._handlers: dict[tuple[str, str], HandlerEntry] = {}
        self._queues_of: defaultdict[str, list[str]] = defaultdict(list)
        self._known_queues: set[str] = set()
        self._warned_events: set[str] = set()
        self._resolvers: dict[str | None, Resolver] = {}
        self.processor: Processor | None = None

    @classmethod
    def init(cls, db: RedisLike, streamdb: RedisLike | None = None,
             ctx: Mapping[str, Any] | None = None, concurrency: int = 1,
             processor: ProcessorOptions | None = None, expose: EventSink | int | None = None,
             prefix: str = "remq") -> TaskManager:
        """``streamdb`` is accepted for the original remq's signature; job records and
        streams change together in one atomic script, so they must share one database."""
        if streamdb is not None and streamdb is not db:
            raise InvalidOptions(
                "streamdb: streams and job records are updated together atomically, so they "
                "must be in one Redis database; pass only db (or the same client twice).")
        return cls(Connection(db), ctx=ctx, concurrency=concurrency, processor=processor,
                   expose=expose, prefix=prefix)

    # -- handlers ---------------------------------------------------------------

    def register_handler(self, event: str, handler: Handler, queue: str = "default",
                         options: HandlerOptions | None = None) -> None:
        if not isinstance(event, str) or not event:
            raise InvalidOptions(f"event must be a non-empty string, got {event!r}")
        validate_queue_name(queue)
        if not callable(handler):
            raise InvalidOptions(f"register_handler({event!r}): handler must be callable, "
                                 f"got {handler!r}")
        opts = validate_handler_options(event, options)
        existing = self._handlers.get((queue, event))
        if existing is not None and existing.fn is not handler:
            raise DuplicateHandler(
                f"event {event!r} in queue {queue!r} already has handler {_name(existing.fn)}; "
                f"cannot also register {_name(handler)}. Rename one event or use another queue.")
        self._handlers[(queue, event)] = HandlerEntry(
            event, queue, handler, opts, debounce.DebounceSpec.parse(event, opts.get("debounce")),
            CronSpec.parse(event, opts.get("repeat")))
        if queue not in self._queues_of[event]:
            self._queues_of[event].append(queue)

    def register_resolver(self, queue: str | None, resolver: Resolver) -> None:
        """Handlers found on demand (the Django Tasks backend imports a task by its path):
        on a miss for ``(queue, event)`` the resolver may ``register_handler`` it and return
        True. ``queue=None`` covers every queue; a named queue counts as served."""
        if queue is not None:
            validate_queue_name(queue)
        self._resolvers[queue] = resolver

    def handler_for(self, queue: str, event: str) -> HandlerEntry | None:
        entry = self._handlers.get((queue, event))
        if entry is None and self._resolvers:
            resolver = self._resolvers.get(queue) or self._resolvers.get(None)
            if resolver is not None and resolver(queue, event):
                entry = self._handlers.get((queue, event))
        return entry

    def events_in(self, queue: str) -> list[str]:
        return sorted(e for q, e in self._handlers if q == queue)

    @property
    def handlers(self) -> list[HandlerEntry]:
        return list(self._handlers.values())

    @property
    def queues(self) -> list[str]:
        """Queues with a handler or a resolver here (what a worker serves by default)."""
        named = {q for q in self._resolvers if q is not None}
        return sorted({q for q, _ in self._handlers} | named) or ["default"]

    # -- emitting ---------------------------------------------------------------

    def prepare(self, event: str, queue: str | None, data: Any,
                options: EmitOptions | Mapping[str, Any] | None) -> tuple[str, NewJob]:
        """Validate one emit and build its job; no I/O (shared by every emit flavour)."""
        if not isinstance(event, str) or not event:
            raise InvalidOptions(f"event must be a non-empty string, got {event!r}")
        opts = validate_emit_options(event, options)
        if queue is None:
            known = self._queues_of.get(event)
            queue = known[0] if known and len(known) == 1 else "default"
        validate_queue_name(queue)
        if self._handlers and event not in self._queues_of:
            self._warn_unknown(event)
        entry = self._handlers.get((queue, event))
        if entry is not None:
            opts = {**entry.options, **opts}
            opts.pop("debounce", None)
            opts.pop("repeat", None)
        job_id = opts.get("id") or uuid.uuid4().hex
        data_json = jsonutil.dumps_data(data, f"emit({event!r})")
        fields = emit_fields(job_id, event, queue, data_json, opts)
        trailing = None
        if entry is not None and entry.debounce is not None and entry.debounce.mode == "trailing":
            msg = debounce.provisional_message(job_id, event, queue, data, opts)
            trailing = (event, entry.debounce.key_of(msg), entry.debounce)
        return queue, NewJob(job_id, fields, run_at_ms(opts), debounce=trailing,
                             priority=opts.get("priority") or 0)

    def _warn_unknown(self, event: str) -> None:
        if event in self._warned_events:
            return
        self._warned_events.add(event)
        warnings.warn(f"emit({event!r}): no handler is registered for this event in this "
                      f"process (known events: {', '.join(sorted(self._queues_of))}); the job "
                      "will fail with UnknownEvent unless a worker elsewhere handles it",
                      UnknownEventWarning, stacklevel=4)

    def emit(self, event: str, queue: str | None = None, data: Any = None,
             options: EmitOptions | None = None) -> str:
        """Enqueue a task; returns its id at once. A live job with the same explicit
        ``options["id"]`` is not enqueued twice (its id is returned)."""
        batch = self._batch([self.prepare(event, queue, data, options)])
        return batch.ids_from(run_many(self.conn.sync, batch.steps))[0]

    async def aemit(self, event: str, queue: str | None = None, data: Any = None,
                    options: EmitOptions | None = None) -> str:
        batch = self._batch([self.prepare(event, queue, data, options)])
        return batch.ids_from(await arun_many(self.conn.aio, batch.steps))[0]

    async def aenqueue(self, queue: str, jobs: Sequence[NewJob]) -> list[str]:
        """Write prepared jobs; returns the ids that will run (see :mod:`.debounce`)."""
        batch = self._batch([(queue, job) for job in jobs])
        return batch.ids_from(await arun_many(self.conn.aio, batch.steps))

    def emit_many(self, items: Iterable[Mapping[str, Any]]) -> list[str]:
        """Enqueue many tasks, one round trip per chunk of 1,000; ids in input order."""
        ids: list[str] = []
        for prepared in self._prepared_chunks(items):
            batch = self._batch(prepared)
            ids += batch.ids_from(run_many(self.conn.sync, batch.steps))
        return ids

    async def aemit_many(self, items: Iterable[Mapping[str, Any]]) -> list[str]:
        ids: list[str] = []
        for prepared in self._prepared_chunks(items):
            batch = self._batch(prepared)
            ids += batch.ids_from(await arun_many(self.conn.aio, batch.steps))
        return ids

    def _prepared_chunks(self, items: Iterable[Mapping[str, Any]]
                         ) -> Iterator[list[tuple[str, NewJob]]]:
        """Each item validated and prepared, in chunks of ``EMIT_CHUNK``."""
        chunk: list[tuple[str, NewJob]] = []
        for n, item in enumerate(items):
            check_emit_item(n, item)
            unknown = set(item) - EMIT_ITEM_KEYS
            if unknown or "event" not in item:
                raise InvalidOptions(f"emit_many item {n}: needs 'event' and may have queue, "
                                     f"data, options; unexpected keys: {sorted(unknown)}")
            chunk.append(self.prepare(item["event"], item.get("queue"), item.get("data"),
                                      item.get("options")))
            if len(chunk) >= EMIT_CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _batch(self, prepared: Sequence[tuple[str, NewJob]]) -> _EmitBatch:
        """The steps that write prepared jobs in one round trip: the queue registry (for
        queues this manager has not registered yet), then per queue one emit.lua call for
        plain jobs and one call per trailing-debounced job."""
        by_queue: defaultdict[str, list[NewJob]] = defaultdict(list)
        for queue, job in prepared:
            by_queue[queue].append(job)
        new = [q for q in by_queue if q not in self._known_queues]
        steps: list[Step] = [Cmd(("SADD", self.keys.queues, *new))] if new else []
        answers: list[str | None] = [None] * len(steps)
        for q, jobs in by_queue.items():
            qk = self.keys.queue(q)
            lanes = ops.register_lanes(qk, jobs)
            if lanes is not None:  # before the jobs: a worker learns a lane before its jobs
                steps.append(lanes)
                answers.append(None)
            plain = [j for j in jobs if j.debounce is None]
            if plain:
                steps.append(ops.emit(qk, plain))
                answers.append(None)
            for j in jobs:
                if j.debounce is not None:
                    steps.append(debounce.emit_call(qk, *j.debounce, j))
                    answers.append(j.id)
        return _EmitBatch(self._known_queues, new, [job.id for _, job in prepared], steps,
                          answers)

    # -- pausing ----------------------------------------------------------------

    def pause_queue(self, queue: str) -> None:
        """Workers stop reading ``queue`` (work already running finishes)."""
        self.conn.sync.set(self.keys.queue(validate_queue_name(queue)).paused, "1")

    def resume_queue(self, queue: str) -> None:
        self.conn.sync.delete(self.keys.queue(validate_queue_name(queue)).paused)

    def is_queue_paused(self, queue: str) -> bool:
        return bool(self.conn.sync.exists(self.keys.queue(validate_queue_name(queue)).paused))

    async def apause_queue(self, queue: str) -> None:
        await self.conn.aio.set(self.keys.queue(validate_queue_name(queue)).paused, "1")

    async def aresume_queue(self, queue: str) -> None:
        await self.conn.aio.delete(self.keys.queue(validate_queue_name(queue)).paused)

    async def ais_queue_paused(self, queue: str) -> bool:
        return bool(await self.conn.aio.exists(self.keys.queue(validate_queue_name(queue)).paused))

    # -- running ----------------------------------------------------------------

    async def start(self, queues: Sequence[str] | None = None, *, burst: bool = False) -> None:
        """Start working ``queues`` (default: every queue with a handler) in the background."""
        if self.processor is not None:
            raise RuntimeError("this TaskManager is already started; stop() it first")
        for q in queues or ():
            validate_queue_name(q)
        if self.expose_port is not None and self._close_gateway is None:
            if TaskManager.gateway_server is None:
                raise InvalidOptions(
                    f"expose={self.expose_port}: serving the WebSocket gateway needs the Django "
                    "layer (django_remq in INSTALLED_APPS, a CHANNEL_LAYERS); or pass an "
                    "EventSink as expose")
            self._close_gateway = await TaskManager.gateway_server(self, self.expose_port)
        self.processor = Processor(self, self.conn, concurrency=self.concurrency,
                                   queues=list(queues or self.queues), prefix=self.keys.prefix,
                                   settings=self.settings, ctx=self.ctx, events=self.expose)
        await self.processor.start(burst=burst)

    async def stop(self) -> None:
        """Graceful: stop reading, let running tasks finish (up to the shutdown timeout)."""
        if self.processor is None:
            return
        processor, self.processor = self.processor, None
        await processor.close()
        flush = getattr(self.expose, "aclose", None)  # a sink may hold events still unsent
        if flush is not None:
            await flush()
        if self._close_gateway is not None:
            close, self._close_gateway = self._close_gateway, None
            await close()

    async def wait_until_idle(self) -> None:
        """In burst mode, returns once the queues were found empty."""
        if self.processor is None:
            raise RuntimeError("start(burst=True) first")
        await self.processor.consumer.idle.wait()

    async def run(self, queues: Sequence[str] | None = None, *, burst: bool = False,
                  stop_event: asyncio.Event | None = None) -> None:
        """Work until ``stop_event`` is set (or, with ``burst``, until the queues are empty)."""
        await self.start(queues, burst=burst)
        assert self.processor is not None
        waiters = [asyncio.ensure_future(self.processor.consumer.idle.wait())]
        if stop_event is not None:
            waiters.append(asyncio.ensure_future(stop_event.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await self.stop()


def _port(value: int) -> int:
    if isinstance(value, bool) or not 0 < value < 65536:
        raise InvalidOptions(f"expose must be a TCP port (1-65535) or an EventSink, got {value!r}")
    return value


@dataclass(frozen=True)
class _EmitBatch:
    """Prepared jobs and the steps that write them; reads the ids back from the replies."""

    known_queues: set[str]  # the manager's; the new queues join it once written
    new_queues: list[str]
    ids: list[str]
    steps: list[Step]
    answers: list[str | None]  # per step: the trailing-debounced job it answers for

    def ids_from(self, replies: Sequence[Any]) -> list[str]:
        """Job ids in input order; a merged trailing emit answers with the pending job's id."""
        self.known_queues.update(self.new_queues)
        merged = {job_id: reply for job_id, reply in zip(self.answers, replies, strict=True)
                  if job_id is not None and reply != job_id}
        return [merged.get(i, i) for i in self.ids] if merged else self.ids


def _name(fn: Any) -> str:
    module = getattr(fn, "__module__", "?")
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


__all__ = ["HandlerEntry", "TaskManager"]
