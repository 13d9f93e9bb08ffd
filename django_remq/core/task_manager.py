"""TaskManager: the engine's front door (the original remq's ``TaskManager``).

Holds the handler registry, emits tasks, pauses queues, and runs a Processor
when this process is a worker. Usable without Django: the Django layer builds
one from ``settings.REMQ``.
"""

from __future__ import annotations

import asyncio
import sys
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import jsonutil
from .emit_writes import EMIT_CHUNK, EmitBatch, awrite, chunked, emit_batch, extra_items, write
from .errors import (
    InvalidOptions,
    SyncThreadsExhausted,
    UnknownEventWarning,
)
from .handlers import Handler, HandlerEntry, HandlerRegistry, Resolver
from .options import (
    MAX_PAYLOAD_BYTES,
    check_emit_item,
    check_payload,
    new_job_id,
    run_at_ms,
    validate_emit_options,
    validate_payload_limit,
)
from .policies import debounce
from .settings import ProcessorSettings
from .store.calls import NewJob, check_extra_fields
from .store.connection import Connection, RedisLike
from .store.keys import Keys, validate_queue_name
from .store.records import emit_fields
from .store.replicas import DEFAULT_TIMEOUT_MS, ReplicaWait
from .types import EmitOptions, HandlerOptions, ProcessorOptions
from .worker.processor import Processor
from .worker.task import Emitter, EventSink

#: Stops what an :class:`ExposeServer` started.
Closer = Callable[[], Awaitable[None]]
EMIT_ITEM_KEYS = frozenset({"event", "queue", "data", "options"})


@dataclass(frozen=True)
class ExposeServer:
    """``expose=ExposeServer(port, serve)``: what a worker serves on ``port`` while it runs
    (the original remq's ``expose=PORT``). ``serve(tm, port)`` starts it on the running
    loop, at :meth:`TaskManager.start`, and returns the closer :meth:`TaskManager.stop`
    awaits. The engine serves nothing itself: the caller brings the server (the Django
    layer brings its own, ``runworker_remq --expose``)."""

    port: int
    serve: Callable[[TaskManager, int], Awaitable[Closer]]


class TaskManager:
    """Create with :meth:`init` (the original remq's ``TaskManager.init(options)``)."""

    def __init__(self, conn: Connection, *, ctx: Mapping[str, Any] | None = None,
                 concurrency: int = 1, processor: ProcessorOptions | None = None,
                 expose: EventSink | ExposeServer | int | None = None, prefix: str = "remq",
                 wait_replicas: int = 0, wait_timeout_ms: int = DEFAULT_TIMEOUT_MS,
                 max_payload_bytes: int | None = MAX_PAYLOAD_BYTES,
                 make_sink: Callable[[TaskManager], EventSink | None] | None = None) -> None:
        """``make_sink``: when ``expose`` is not an EventSink, makes this manager's from
        it, once built (a sink that reads Redis shares its connection and keys)."""
        if not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidOptions(f"concurrency must be an int >= 1, got {concurrency!r}")
        #: the most bytes of JSON a task's data or a handler's result may take (None: any)
        self.max_payload_bytes = validate_payload_limit(max_payload_bytes)
        # data shorter than this cannot be over the limit (4 bytes a character at most)
        self._sure_fits = sys.maxsize if max_payload_bytes is None else max_payload_bytes // 4
        # expose: where live events go (an EventSink), or what to serve on a port while
        # this worker runs (an ExposeServer; a bare port has nothing to serve: start() says so)
        self._server = expose if isinstance(expose, ExposeServer) else None
        port = expose.port if isinstance(expose, ExposeServer) else expose
        self.expose_port = (_port(port) if self._server is not None or isinstance(port, int)
                            else None)
        self._close_server: Closer | None = None
        self.conn = conn
        self.ctx = dict(ctx or {})
        self.concurrency = concurrency
        self.settings = ProcessorSettings.from_options(processor)
        self.expose: EventSink | None = None if isinstance(expose, int | ExposeServer) else expose
        self.keys = Keys(prefix)
        #: emits and acknowledgements wait for this many replicas (see :mod:`.replicas`)
        self.replica_wait = ReplicaWait.of(wait_replicas, wait_timeout_ms)
        self.registry = HandlerRegistry()
        self._known_queues: set[str] = set()
        self._warned_events: set[str] = set()
        self.processor: Processor | None = None
        if self.expose is None and make_sink is not None:
            self.expose = make_sink(self)

    @classmethod
    def init(cls, db: RedisLike, streamdb: RedisLike | None = None,
             ctx: Mapping[str, Any] | None = None, concurrency: int = 1,
             processor: ProcessorOptions | None = None,
             expose: EventSink | ExposeServer | int | None = None,
             prefix: str = "remq", cluster: bool = False, wait_replicas: int = 0,
             wait_timeout_ms: int = DEFAULT_TIMEOUT_MS,
             max_payload_bytes: int | None = MAX_PAYLOAD_BYTES) -> TaskManager:
        """``streamdb`` is accepted for the original remq's signature; job records and
        streams change together in one atomic script, so they must share one database.
        ``cluster=True``: ``db`` is the URL of any node of a Redis Cluster.
        ``wait_replicas=N``: an emit returns only once N replicas have the job (else
        :class:`ReplicaTimeout` after ``wait_timeout_ms``), and workers' acknowledgements
        wait for them too. ``max_payload_bytes``: an emit whose data, or a handler whose
        result, is larger as JSON fails with :class:`PayloadTooLarge` (``None``: no limit)."""
        if streamdb is not None and streamdb is not db:
            raise InvalidOptions(
                "streamdb: streams and job records are updated together atomically, so they "
                "must be in one Redis database; pass only db (or the same client twice).")
        return cls(Connection(db, cluster=cluster), ctx=ctx, concurrency=concurrency,
                   processor=processor, expose=expose, prefix=prefix,
                   wait_replicas=wait_replicas, wait_timeout_ms=wait_timeout_ms,
                   max_payload_bytes=max_payload_bytes)

    # -- handlers ---------------------------------------------------------------

    def register_handler(self, event: str, handler: Handler, queue: str = "default",
                         options: HandlerOptions | None = None) -> None:
        self.registry.register(event, handler, queue, options)

    def register_resolver(self, queue: str | None, resolver: Resolver) -> None:
        """Handlers found on demand (the Django Tasks backend imports a task by its path):
        on a miss for ``(queue, event)`` the resolver may ``register_handler`` it and return
        True. ``queue=None`` covers every queue; a named queue counts as served."""
        self.registry.register_resolver(queue, resolver)

    def handler_for(self, queue: str, event: str) -> HandlerEntry | None:
        return self.registry.get(queue, event)

    def events_in(self, queue: str) -> list[str]:
        return self.registry.events_in(queue)

    @property
    def handlers(self) -> list[HandlerEntry]:
        return self.registry.entries

    @property
    def queues(self) -> list[str]:
        """Queues with a handler or a resolver here (what a worker serves by default)."""
        return self.registry.queues

    # -- emitting ---------------------------------------------------------------

    def prepare(self, event: str, queue: str | None, data: Any,
                options: EmitOptions | Mapping[str, Any] | None, *,
                extra: Mapping[str, str] | None = None,
                where: str | None = None) -> tuple[str, NewJob]:
        """Validate one emit and build its job; no I/O (shared by every emit flavour).
        ``where`` names the emit in errors about its data (default ``emit('event')``).
        ``extra``: fields the record keeps for the caller as they are (who emitted it...);
        the engine never reads them, and a worker hands back those its event sink names in
        ``extra_fields`` (``task.extra``, ``event["extra"]``)."""
        if not isinstance(event, str) or not event:
            raise InvalidOptions(f"event must be a non-empty string, got {event!r}")
        opts = validate_emit_options(event, options)
        known = self.registry.queues_of(event)
        chosen = queue
        if queue is None:
            queue = known[0] if len(known) == 1 else "default"
        validate_queue_name(queue)
        if not known:
            if self.registry.entries:
                self._warn_unknown(event)
        elif queue not in known and self.registry.get(queue, event) is None:
            raise self.registry.queue_mismatch(event, chosen)  # (a resolver was asked)
        entry = self.registry.declared(queue, event)
        if entry is not None:
            opts = {**entry.options, **opts}
            opts.pop("debounce", None)
            opts.pop("repeat", None)
        job_id = opts.get("id") or new_job_id()
        where = where or f"emit({event!r})"
        data_json = jsonutil.dumps_data(data, where)
        if len(data_json) > self._sure_fits:
            check_payload(data_json, self.max_payload_bytes, f"{where}: data")
        fields = emit_fields(job_id, event, queue, data_json, opts)
        if extra:
            fields += extra_items(extra)
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
                      f"process (known events: {', '.join(self.registry.events)}); the job "
                      "will fail with UnknownEvent unless a worker elsewhere handles it",
                      UnknownEventWarning, stacklevel=_outside_level())

    def emit(self, event: str, data: Any = None, queue: str | None = None,
             options: EmitOptions | Mapping[str, Any] | None = None) -> str:
        """Enqueue a task; returns its id at once. A live job with the same explicit
        ``options["id"]`` is not enqueued twice (its id is returned)."""
        batch = self._batch([self.prepare(event, queue, data, options)])
        return write(self.conn, batch, repr(event))[0]

    async def aemit(self, event: str, data: Any = None, queue: str | None = None,
                    options: EmitOptions | Mapping[str, Any] | None = None) -> str:
        batch = self._batch([self.prepare(event, queue, data, options)])
        return (await awrite(self.conn, batch, repr(event)))[0]

    def emit_soon(self, event: str, data: Any = None, queue: str | None = None,
                  options: EmitOptions | None = None) -> tuple[str, asyncio.Future[list[str]]]:
        """On the event loop: validate now, return the id and the write in flight."""
        queue, job = self.prepare(event, queue, data, options)
        return job.id, asyncio.ensure_future(self.aenqueue(queue, [job]))

    def enqueue(self, queue: str, jobs: Sequence[NewJob]) -> list[str]:
        """Write jobs made by :meth:`prepare` (validated, their data encoded: a later
        change to the caller's data cannot reach them), one round trip per chunk of
        1,000; returns the ids that will run (see :mod:`.debounce`)."""
        return [job_id for batch in self._enqueue_batches(queue, jobs)
                for job_id in write(self.conn, batch, "enqueue")]

    async def aenqueue(self, queue: str, jobs: Sequence[NewJob]) -> list[str]:
        """Async twin of :meth:`enqueue`."""
        return [job_id for batch in self._enqueue_batches(queue, jobs)
                for job_id in await awrite(self.conn, batch, "ctx.emit")]

    def _enqueue_batches(self, queue: str, jobs: Sequence[NewJob]) -> Iterator[EmitBatch]:
        """The writes of :meth:`enqueue` and :meth:`aenqueue` (each made after the one
        before is written, so a new queue is registered once)."""
        for start in range(0, len(jobs), EMIT_CHUNK):
            yield self._batch([(queue, job) for job in jobs[start:start + EMIT_CHUNK]])

    def emit_many(self, items: Iterable[Mapping[str, Any]]) -> list[str]:
        """Enqueue many tasks, one round trip per chunk of 1,000; ids in input order."""
        ids: list[str] = []
        for prepared in self._prepared_chunks(items):
            batch = self._batch(prepared)
            ids += write(self.conn, batch, "emit_many")
        return ids

    async def aemit_many(self, items: Iterable[Mapping[str, Any]]) -> list[str]:
        ids: list[str] = []
        for prepared in self._prepared_chunks(items):
            batch = self._batch(prepared)
            ids += await awrite(self.conn, batch, "emit_many")
        return ids

    def prepare_many(self, items: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, NewJob]]:
        """Each ``emit_many`` item checked and prepared in turn (:meth:`prepare`), its
        errors naming the item; no I/O."""
        for n, item in enumerate(items):
            check_emit_item(n, item)
            unknown = set(item) - EMIT_ITEM_KEYS
            if unknown or "event" not in item:
                raise InvalidOptions(f"emit_many item {n}: needs 'event' and may have queue, "
                                     f"data, options; unexpected keys: {sorted(unknown)}")
            yield self.prepare(item["event"], item.get("queue"), item.get("data"),
                               item.get("options"), where=f"emit_many item {n} ({item['event']!r})")

    def _prepared_chunks(self, items: Iterable[Mapping[str, Any]]
                         ) -> Iterator[list[tuple[str, NewJob]]]:
        return chunked(self.prepare_many(items), EMIT_CHUNK)

    def _batch(self, prepared: Sequence[tuple[str, NewJob]]) -> EmitBatch:
        return emit_batch(prepared, self.keys, self._known_queues, self.replica_wait)

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
        extra = check_extra_fields(getattr(self.expose, "extra_fields", ()),
                                   f"the event sink {self.expose!r}: extra_fields")
        if self.expose_port is not None and self._close_server is None:
            if self._server is None:
                raise InvalidOptions(
                    f"expose={self.expose_port}: the engine serves nothing on a port by "
                    "itself; pass expose=ExposeServer(port, serve) (under Django, "
                    "runworker_remq --expose PORT brings its own), or an EventSink")
            self._close_server = await self._server.serve(self, self.expose_port)
        self.processor = Processor(self.registry, Emitter(self.emit, self.emit_soon, self.aemit),
                                   self.conn, concurrency=self.concurrency,
                                   queues=list(queues or self.queues), prefix=self.keys.prefix,
                                   settings=self.settings, ctx=self.ctx, events=self.expose,
                                   replica_wait=self.replica_wait,
                                   max_payload_bytes=self.max_payload_bytes, extra_fields=extra)
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
        if self._close_server is not None:
            close, self._close_server = self._close_server, None
            await close()

    async def run(self, queues: Sequence[str] | None = None, *, burst: bool = False,
                  stop_event: asyncio.Event | None = None) -> None:
        """Work until ``stop_event`` is set (or, with ``burst``, until the queues are empty).

        Raises :class:`SyncThreadsExhausted` (after a graceful stop) when more sync
        handlers are stuck past their timeouts than the worker keeps threads for: the
        caller should start a fresh worker (``runworker_remq`` re-executes itself)."""
        await self.start(queues, burst=burst)
        processor = self.processor
        assert processor is not None
        waiters = [asyncio.ensure_future(processor.consumer.idle.wait()),
                   asyncio.ensure_future(processor.exhausted.wait())]
        if stop_event is not None:
            waiters.append(asyncio.ensure_future(stop_event.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await self.stop()
        if processor.exhausted.is_set():
            raise SyncThreadsExhausted(processor.exhausted_reason)


def _outside_level() -> int:
    """The ``stacklevel`` of the first caller outside this package (the user's line,
    whichever of the emits, the Django ones or the engine's, it called)."""
    level, frame = 2, sys._getframe(2)  # 1: warnings.warn's caller; 2: its caller
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
            "django_remq."):
        level, frame = level + 1, frame.f_back
    return level


def _port(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
        raise InvalidOptions(f"expose must be an EventSink, an ExposeServer or a TCP port "
                             f"(1-65535), got {value!r}")
    return value




__all__ = ["ExposeServer", "HandlerEntry", "TaskManager"]
