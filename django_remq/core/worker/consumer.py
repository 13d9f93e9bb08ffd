"""Consumer: reads a worker's queues, runs each delivery through a handler, acknowledges.

It knows transport, not policy: what a job's outcome is (completed, retry...) is
the message handler's answer (the :class:`~django_remq.core.processor.Processor`).
Background duties (promoting due jobs, renewing running ones, reclaiming those
of dead workers) live in :mod:`.upkeep`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .. import jsonutil
from ..errors import MalformedMessage, PoisonMessage
from ..policies import failures
from ..store import ops
from ..store.connection import Connection
from ..store.keys import Keys
from ..store.ops import Delivery, Outcome, Retention
from ..store.scripts import arun_many
from ..types import CancelToken, Message, MessageContext
from .acker import Acker, OnApplied
from .pool import ConcurrencyPool
from .reader import Entry, StreamReader
from .reconnect import Backoff
from .upkeep import Upkeep

log = logging.getLogger("django_remq.consumer")

MessageHandler = Callable[[Message, MessageContext], Awaitable[Outcome]]
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


@dataclass(frozen=True)
class Running:
    """A job this worker runs: where its entry is, its task, its cancel request."""

    queue: str
    entry_id: str
    task: asyncio.Task[None]
    cancel: CancelToken


@dataclass(frozen=True)
class ConsumerOptions:
    queues: Sequence[str] = ("default",)
    concurrency: int = 1
    prefix: str = "remq"
    claim_idle_ms: int = 30_000
    max_deliveries: int = 5
    retention: Retention = field(default_factory=Retention)
    block_ms: int = 1000
    promote_interval_ms: int = 100
    shutdown_timeout_ms: int = 30_000


def new_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Consumer:
    def __init__(self, conn: Connection, handler: MessageHandler,
                 options: ConsumerOptions = ConsumerOptions(),
                 on_applied: OnApplied | None = None) -> None:
        self.conn = conn
        self.handler = handler
        self.options = options
        self.keys = Keys(options.prefix)
        self.name = new_consumer_name()
        self.pool = ConcurrencyPool(options.concurrency)
        self.reader = StreamReader(conn, self.keys, self.name, options.block_ms)
        self.acker = Acker(conn, self.keys, options.retention, on_applied)
        self.upkeep = Upkeep(self)
        self.running: dict[str, Running] = {}
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._burst = False
        self.idle = asyncio.Event()  # set when a burst run found nothing left to do

    @property
    def queues(self) -> Sequence[str]:
        return self.options.queues

    async def start(self, *, burst: bool = False) -> None:
        """Start consuming in the background; returns once the worker is set up."""
        self._burst = burst
        if burst:  # an empty read ends a burst run: don't sit in a long block first
            self.reader.block_ms = min(self.reader.block_ms, 50)
        await self._until_connected(lambda: self.reader.ensure_groups(self.queues))
        await self.upkeep.promote()
        await self.conn.aio.sadd(self.keys.queues, *self.queues)  # type: ignore[misc]
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_loop(), name="remq-read"),
                       *self.upkeep.start()]
        log.info("consumer %s reading %s (concurrency %d)", self.name, ", ".join(self.queues),
                 self.options.concurrency)

    def stop(self) -> None:
        """Stop taking new work; running tasks go on (see :meth:`close`)."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def wait_for_active_tasks(self, timeout: float | None = None) -> bool:
        finished = await self.pool.wait_idle(timeout)
        await self.acker.close(timeout)
        return finished

    async def close(self) -> None:
        """Graceful stop: let running tasks finish up to the shutdown timeout, then leave
        the rest to other workers at once (not after the visibility timeout)."""
        self.stop()
        _, stuck = await asyncio.wait(self._tasks, timeout=5.0) if self._tasks else ((), ())
        if stuck:  # they also watch the stopping flag; this only bounds the wait
            log.warning("%d worker loops did not stop within 5 s", len(stuck))
        finished = await self.pool.wait_idle(self.options.shutdown_timeout_ms / 1000)
        if not finished:
            log.warning("shutdown timeout: %d tasks still running are handed back",
                        self.pool.active)
            self.pool.cancel_all()
            await self.pool.wait_idle(1.0)
        await self.acker.close(5.0)
        await self.upkeep.release()

    async def _until_connected(self, op: Callable[[], Awaitable[object]]) -> None:
        backoff = Backoff()
        while True:
            try:
                await op()
                return
            except REDIS_DOWN as exc:
                if self.stopping:
                    raise
                delay = backoff.next()
                log.warning("Redis unavailable at %r (%s); retrying in %.1fs", self.conn, exc,
                            delay)
                await asyncio.sleep(delay)

    async def _read_loop(self) -> None:
        backoff = Backoff()
        while not self.stopping:
            try:
                await self._read_once()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as exc:
                delay = backoff.next()
                log.warning("Redis unavailable at %r (%s); retrying in %.1fs", self.conn, exc,
                            delay)
                await asyncio.sleep(delay)
            except Exception:
                log.exception("unexpected error in the read loop; going on")
                await asyncio.sleep(backoff.next())

    async def _read_once(self) -> None:
        await self.pool.wait_for_slot()
        queues = self.upkeep.unpaused()
        if not queues:
            await asyncio.sleep(0.1)
            return
        if await self._fetch(queues):
            return  # busy: fetch again rather than block
        entries = await self.reader.read(queues, self.pool.free)
        if entries:
            await self._deliver(entries)
        elif self._burst and await self.upkeep.drained():
            self.idle.set()
            self._stopping.set()

    async def _fetch(self, queues: Sequence[str]) -> bool:
        """Read and deliver in one script per queue (no blocking); ``True`` if it found work."""
        queues, each = self.reader.share(queues, self.pool.free)
        calls = [ops.fetch(self.keys.queue(q), self.name, each,
                                lock_ms=self.options.claim_idle_ms,
                                max_deliveries=self.options.max_deliveries) for q in queues]
        try:
            replies = await arun_many(self.conn.aio, calls)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.reader.ensure_groups(queues)
            return False
        found = False
        for q, deliveries in zip(queues, replies, strict=True):
            found = found or bool(deliveries)
            self.dispatch(q, deliveries)
        return found

    async def _deliver(self, entries: Sequence[Entry]) -> None:
        """Start what the blocking read brought, while deliver.lua marks it processing.

        A fresh entry carries its job's run fields, so its handler starts without
        waiting for the mark (the round trip would double the pick-up latency). The
        outcome waits for the mark, so finish.lua always comes after it. Entries
        without run fields go the slow way: marked first, then started."""
        by_queue: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
        started: set[str] = set()
        mark: asyncio.Future[list[list[Delivery]]] = asyncio.get_running_loop().create_future()
        for e in entries:
            by_queue[e.queue].append((e.entry_id, e.job_id))
            if e.job_id and "name" in e.fields:
                self._start(e.queue, Delivery(e.entry_id, e.job_id, "run", e.fields), mark)
                started.add(e.entry_id)
        qs = list(by_queue)
        calls = [ops.deliver(self.keys.queue(q), self.name, by_queue[q],
                                  lock_ms=self.options.claim_idle_ms,
                                  max_deliveries=self.options.max_deliveries) for q in qs]
        try:
            replies = await arun_many(self.conn.aio, calls)
        except BaseException as exc:
            mark.set_exception(exc)
            raise
        mark.set_result(replies)
        for q, deliveries in zip(qs, replies, strict=True):
            late = []
            for d in deliveries:
                if d.entry_id not in started:
                    late.append(d)
                elif d.verdict != "run":
                    log.warning("job %s in %r started before it was found %s; its outcome will "
                                "be ignored", d.job_id, q, d.verdict)
            self.dispatch(q, late)

    def dispatch(self, queue: str, deliveries: list[Delivery]) -> None:
        """Start each runnable delivery; record the ones that cannot run."""
        for d in deliveries:
            if d.verdict == "run":
                self._start(queue, d)
            elif d.verdict == "poison":
                exc = PoisonMessage(
                    f"job {d.job_id} in queue {queue!r} was delivered {d.fields.get('deliveries')} "
                    f"times without finishing (max_deliveries={self.options.max_deliveries}); "
                    "its worker probably crashed or was killed each time"
                )
                log.error("%s", exc)
                attempt = int(d.fields.get("retried_attempts") or 0) + 1
                self.acker.add(queue, failures.failed(d.entry_id, d.job_id, exc, attempt, queue,
                                                      d.fields.get("name", "")))
            elif d.verdict == "malformed":
                log.error("malformed entry %s in queue %r (no job id): %r", d.entry_id, queue,
                          d.fields)
                self.acker.add(queue, failures.malformed(queue, d.entry_id, d.fields))
            else:
                log.debug("entry %s (job %s) in %r: %s", d.entry_id, d.job_id, queue, d.verdict)

    def _start(self, queue: str, d: Delivery, mark: asyncio.Future[Any] | None = None) -> None:
        try:
            msg = to_message(queue, d)
        except (KeyError, ValueError, TypeError) as exc:
            err = MalformedMessage(f"job {d.job_id} in queue {queue!r} has a corrupt record: "
                                   f"{type(exc).__name__}: {exc}")
            log.error("%s", err)
            self.acker.add(queue, failures.failed(d.entry_id, d.job_id, err, 1, queue,
                                                  d.fields.get("name", "")))
            return
        mctx = MessageContext(self.name, msg.deliveries, mark)
        task = self.pool.spawn(self._run(msg, mctx, mark))
        self.running[msg.id] = Running(queue, d.entry_id, task, mctx.cancel)

    def cancel(self, job_id: str) -> None:
        """Ask a running job to stop: ``ctx.cancelled`` turns true and an async handler gets
        ``CancelledError`` (a sync one is abandoned); it ends ``cancelled``."""
        running = self.running.get(job_id)
        if running is not None and not running.cancel.requested:
            log.info("job %s in %r: cancellation requested, stopping it", job_id, running.queue)
            running.cancel.requested = True
            running.task.cancel()

    async def _run(self, msg: Message, ctx: MessageContext,
                   mark: asyncio.Future[Any] | None) -> None:
        try:
            outcome = await self.handler(msg, ctx)
        except asyncio.CancelledError:
            self.running.pop(msg.id, None)
            raise  # shutting down: the entry stays pending and is handed back
        except Exception as exc:  # the handler is meant to turn errors into outcomes
            log.exception("message handler failed on job %s", msg.id)
            outcome = failures.failed(msg.entry_id, msg.id, exc, msg.attempt, msg.queue, msg.name)
        self.running.pop(msg.id, None)  # from here on, a cancel request has nothing to stop
        try:
            if mark is not None:
                await asyncio.shield(mark)
        except Exception:  # the mark never reached Redis: leave the entry for reclaim
            return
        self.acker.add(msg.queue, outcome)


def to_message(queue: str, d: Delivery) -> Message:
    """A delivery's record fields as a Message; raises on a corrupt record."""
    f = d.fields
    options = jsonutil.loads(f["options"]) if f.get("options") else {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a JSON object, got {f['options']!r}")
    return Message(id=d.job_id, entry_id=d.entry_id, queue=queue, name=f["name"],
                   data=jsonutil.loads(f.get("data") or "null"), options=options,
                   retried_attempts=int(f.get("retried_attempts") or 0),
                   retry_count=int(f["retry_count"]) if f.get("retry_count") else None,
                   deliveries=int(f.get("deliveries") or 1),
                   timestamp=int(f.get("timestamp") or 0),  # a fresh entry: 1st delivery
                   watched=bool(f.get("watch")))
