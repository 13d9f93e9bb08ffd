"""TaskManager: the engine's front door (the seed's ``TaskManager``).

Holds the handler registry, emits tasks, pauses queues, and runs a Processor
when this process is a worker. Usable without Django: the Django layer builds
one from ``settings.REMQ``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import jsonutil
from .errors import DuplicateHandler, InvalidOptions
from .options import run_at_ms, validate_emit_options, validate_handler_options
from .policies import debounce
from .policies.cron import CronSpec
from .store import ops
from .store.connection import Connection, RedisLike
from .store.keys import Keys, validate_queue_name
from .store.ops import NewJob
from .store.records import emit_fields
from .store.scripts import Call, arun_many, run, run_many
from .types import EmitOptions, HandlerOptions, ProcessorOptions
from .worker.processor import Processor, ProcessorSettings
from .worker.task import EventSink

Handler = Callable[..., Any]
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
    """Create with :meth:`init` (the seed's ``TaskManager.init(options)``)."""

    def __init__(self, conn: Connection, *, ctx: Mapping[str, Any] | None = None,
                 concurrency: int = 1, processor: ProcessorOptions | None = None,
                 expose: EventSink | None = None, prefix: str = "remq") -> None:
        if not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidOptions(f"concurrency must be an int >= 1, got {concurrency!r}")
        self.conn = conn
        self.ctx = dict(ctx or {})
        self.concurrency = concurrency
        self.settings = ProcessorSettings.from_options(processor)
        self.expose = expose
        self.keys = Keys(prefix)
        self._handlers: dict[tuple[str, str], HandlerEntry] = {}
        self._queues_of: defaultdict[str, list[str]] = defaultdict(list)
        self._known_queues: set[str] = set()
        self.processor: Processor | None = None

    @classmethod
    def init(cls, db: RedisLike, streamdb: RedisLike | None = None,
             ctx: Mapping[str, Any] | None = None, concurrency: int = 1,
             processor: ProcessorOptions | None = None, expose: EventSink | None = None,
             prefix: str = "remq", cluster: bool = False) -> TaskManager:
        """``streamdb`` is accepted for the seed's signature; job records and streams change
        together in one atomic script, so they must live in the same Redis database.
        ``cluster=True``: ``db`` is the URL of any node of a Redis Cluster."""
        if streamdb is not None and streamdb is not db:
            raise InvalidOptions(
                "streamdb: streams and job records are updated together atomically, so they "
                "must be in one Redis database; pass only db (or the same client twice).")
        return cls(Connection(db, cluster=cluster), ctx=ctx, concurrency=concurrency,
                   processor=processor, expose=expose, prefix=prefix)

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

    def handler_for(self, queue: str, event: str) -> HandlerEntry | None:
        return self._handlers.get((queue, event))

    def events_in(self, queue: str) -> list[str]:
        return sorted(e for q, e in self._handlers if q == queue)

    @property
    def handlers(self) -> list[HandlerEntry]:
        return list(self._handlers.values())

    @property
    def queues(self) -> list[str]:
        """Queues with at least one handler here (what a worker serves by default)."""
        return sorted({q for q, _ in self._handlers}) or ["default"]

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
        return queue, NewJob(job_id, fields, run_at_ms(opts), debounce=trailing)

    def emit(self, event: str, queue: str | None = None, data: Any = None,
             options: EmitOptions | None = None) -> str:
        """Enqueue a task; returns its id at once. A live job with the same explicit
        ``options["id"]`` is not enqueued twice (its id is returned)."""
        queue, job = self.prepare(event, queue, data, options)
        self._register_queues_sync([queue])
        if job.debounce is not None:
            return run(self.conn.sync, debounce.emit_call(self.keys.queue(queue), *job.debounce,
                                                          job))
        run(self.conn.sync, ops.emit(self.keys.queue(queue), [job]))
        return job.id

    async def aemit(self, event: str, queue: str | None = None, data: Any = None,
                    options: EmitOptions | None = None) -> str:
        queue, job = self.prepare(event, queue, data, options)
        return (await self.aenqueue(queue, [job]))[0]

    async def aenqueue(self, queue: str, jobs: Sequence[NewJob]) -> list[str]:
        """Write prepared jobs; returns the ids that will run (see :mod:`.debounce`)."""
        if queue not in self._known_queues:
            await self.conn.aio.sadd(self.keys.queues, queue)  # type: ignore[misc]
            self._known_queues.add(queue)
        chunk = {queue: list(jobs)}
        replies = await arun_many(self.conn.aio, self._calls(chunk))
        return self._ids(chunk, [j.id for j in jobs], replies)

    def emit_many(self, items: Iterable[Mapping[str, Any]]) -> list[str]:
        """Enqueue many tasks, one round trip per chunk of 1,000; ids in input order."""
        ids: list[str] = []
        for chunk, chunk_ids in self._emit_chunks(items):
            self._register_queues_sync(chunk)
            ids += self._ids(chunk, chunk_ids, run_many(self.conn.sync, self._calls(chunk)))
        return ids

    async def aemit_many(self, items: Iterable[Mapping[str, Any]]) -> list[str]:
        ids: list[str] = []
        for chunk, chunk_ids in self._emit_chunks(items):
            new = [q for q in chunk if q not in self._known_queues]
            if new:
                await self.conn.aio.sadd(self.keys.queues, *new)  # type: ignore[misc]
                self._known_queues.update(new)
            replies = await arun_many(self.conn.aio, self._calls(chunk))
            ids += self._ids(chunk, chunk_ids, replies)
        return ids

    def _emit_chunks(self, items: Iterable[Mapping[str, Any]]
                     ) -> Iterable[tuple[dict[str, list[NewJob]], list[str]]]:
        """Prepared jobs by queue, and their ids in input order, in chunks of ``EMIT_CHUNK``."""
        chunk: defaultdict[str, list[NewJob]] = defaultdict(list)
        ids: list[str] = []
        for n, item in enumerate(items):
            unknown = set(item) - EMIT_ITEM_KEYS
            if unknown or "event" not in item:
                raise InvalidOptions(f"emit_many item {n}: needs 'event' and may have queue, "
                                     f"data, options; unexpected keys: {sorted(unknown)}")
            queue, job = self.prepare(item["event"], item.get("queue"), item.get("data"),
                                      item.get("options"))
            chunk[queue].append(job)
            ids.append(job.id)
            if len(ids) >= EMIT_CHUNK:
                yield chunk, ids
                chunk, ids = defaultdict(list), []
        if ids:
            yield chunk, ids

    def _calls(self, chunk: Mapping[str, list[NewJob]]) -> list[Call[Any]]:
        """Per queue: one emit.lua call for plain jobs, one call per trailing-debounced job."""
        calls: list[Call[Any]] = []
        for q, jobs in chunk.items():
            qk = self.keys.queue(q)
            plain = [j for j in jobs if j.debounce is None]
            if plain:
                calls.append(ops.emit(qk, plain))
            calls += [debounce.emit_call(qk, *j.debounce, j) for j in jobs if j.debounce]
        return calls

    @staticmethod
    def _ids(chunk: Mapping[str, list[NewJob]], ids: list[str], replies: Sequence[Any]
             ) -> list[str]:
        """Job ids in input order; a merged trailing emit answers with the pending job's id."""
        actual: dict[str, str] = {}
        it = iter(replies)
        for jobs in chunk.values():
            if any(j.debounce is None for j in jobs):
                next(it)
            actual.update((j.id, next(it)) for j in jobs if j.debounce)
        return [actual.get(i, i) for i in ids] if actual else ids

    def _register_queues_sync(self, queues: Iterable[str]) -> None:
        new = [q for q in queues if q not in self._known_queues]
        if new:
            self.conn.sync.sadd(self.keys.queues, *new)
            self._known_queues.update(new)

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


def _name(fn: Any) -> str:
    module = getattr(fn, "__module__", "?")
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


__all__ = ["HandlerEntry", "TaskManager"]
