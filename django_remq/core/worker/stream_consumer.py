"""Consumer: reads a worker's queues, runs each delivery through a handler, acknowledges.

It knows transport, not policy: what a job's outcome is (completed, retry...) is
the message handler's answer (the :class:`~django_remq.core.processor.Processor`).
Background duties (promoting due jobs, renewing running ones, timing the reclaim
of dead workers' entries) live in :mod:`.housekeeping`; the read loop's ways in besides
its blocking read (reclaim, held entries, fetches while busy) in :mod:`.fetcher`.

A handler starts only for a job deliver.lua has just made ``processing`` for this
worker, in the same atomic step that read or claimed its entry: a paused queue, a
cancelled, deleted or finished job, a forged entry never run. The read loop is the
one place that takes pool slots, so what it claims always finds room.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from ..loops import wait_cancelled
from ..policies import failures
from ..policies.dlq import DeadLetterConfig
from ..store.calls import Delivery, Outcome
from ..store.connection import Connection
from ..store.keys import Keys
from ..store.replicas import ReplicaWait
from ..types import CancelToken, Message, MessageContext
from .acker import Acker, OnApplied
from .consumer_options import ConsumerOptions
from .deliveries import failed, on_lane, refusal, to_message
from .fetcher import Fetcher
from .housekeeping import Housekeeping, WorkerSpec
from .lanes import LaneView
from .pool import ConcurrencyPool
from .reader import StreamReader
from .reconnect import REDIS_DOWN, Backoff

log = logging.getLogger("django_remq.consumer")

MessageHandler = Callable[[Message, MessageContext], Awaitable[Outcome]]


@dataclass(slots=True)  # one per task: not frozen, which costs 3x to build (see calls.Delivery)
class Running:
    """A job this worker runs: where its entry is, its task, its cancel request."""

    queue: str
    entry_id: str
    task: asyncio.Task[None]
    cancel: CancelToken
    lane: int = 0  # the priority of the stream its entry is on


def new_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Consumer:
    def __init__(self, conn: Connection, handler: MessageHandler,
                 options: ConsumerOptions = ConsumerOptions(),
                 on_applied: OnApplied | None = None, *, dlq: DeadLetterConfig | None = None,
                 replica_wait: ReplicaWait | None = None,
                 report: Callable[[], Mapping[str, Any]] | None = None) -> None:
        """``dlq`` and ``replica_wait`` go to the acker (the finish step), ``report`` gives
        more heartbeat fields (the Processor's counts of tasks run and failed)."""
        self.conn = conn
        self.handler = handler
        self.options = options
        self.keys = Keys(options.prefix)
        self.name = new_consumer_name()
        self.pool = ConcurrencyPool(options.concurrency)
        lanes = LaneView(options.priority_aging_ms)  # housekeeping keeps it, the reader reads it
        self.reader = StreamReader(conn, self.keys, self.name, options.block_ms, lanes)
        self.acker = Acker(conn, self.keys, options.retention, on_applied, dlq=dlq,
                           replica_wait=replica_wait, linger_ms=options.ack_linger_ms)
        self.running: dict[str, Running] = {}
        self._stopping = asyncio.Event()
        self.housekeeping = Housekeeping(
            conn, self.keys,
            WorkerSpec(self.name, options.queues, options.concurrency, options.claim_idle_ms,
                   options.promote_interval_ms),
            running=self._running_view, cancel=self.cancel, stopping=self._stopping.is_set,
            lanes=lanes, report=report)
        self._tasks: list[asyncio.Task[None]] = []
        self._burst = False
        self._recorded: deque[str] = deque(maxlen=1024)  # malformed entries sent to the acker
        #: queues where a blocking read took more than it ran (shared with the reader)
        self._held: set[str] = self.reader.held
        self.idle = asyncio.Event()  # set when a burst run found nothing left to do
        #: reclaim, held entries, fetches while busy: the read loop's other ways in
        self.fetcher = Fetcher(conn, self.keys, self.name, options, self.pool, self.reader,
                               self.housekeeping, self.dispatch)
        self._recheck = False  # a read failed: deliver what this consumer holds first

    @property
    def queues(self) -> Sequence[str]:
        return self.options.queues

    def _running_view(self) -> Mapping[str, tuple[str, str, int]]:
        return {job_id: (r.queue, r.entry_id, r.lane) for job_id, r in self.running.items()}

    def _streams_of(self, queue: str) -> list[str]:
        return self.housekeeping.lanes.streams(self.keys, queue)

    async def start(self, *, burst: bool = False) -> None:
        """Start consuming in the background; returns once the worker is set up."""
        self._burst = burst
        await self._until_connected(self._set_up)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_loop(), name="remq-read"),
                       *self.housekeeping.start()]
        log.info("consumer %s reading %s (concurrency %d)", self.name, ", ".join(self.queues),
                 self.options.concurrency)

    async def _set_up(self) -> None:
        """Groups, due jobs, the queue registry: each step safe to repeat, so the whole
        set-up is tried again while Redis is away (it may go between two steps)."""
        await self.reader.ensure_groups(self.queues)
        await self.housekeeping.promote()
        await self.conn.aio.sadd(self.keys.queues, *self.queues)  # type: ignore[misc]

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
        """Graceful stop: let running tasks finish up to the shutdown timeout (counted from
        here: stopping the loops spends it too), then leave the rest to other workers at
        once (not after the visibility timeout)."""
        t0 = time.monotonic()
        self.stop()
        if self._tasks:
            await self._stop_loops()
        left = self.options.shutdown_timeout_ms / 1000 - (time.monotonic() - t0)
        finished = await self.pool.wait_idle(max(0.0, left))
        if not finished:
            log.warning("shutdown timeout: %d tasks still running are handed back",
                        self.pool.active)
            self.pool.cancel_all()
            await self.pool.wait_idle(1.0)
        await self.acker.close(5.0)
        await self.housekeeping.release()

    async def _stop_loops(self) -> None:
        """Wait for the cancelled loops (they also watch the stopping flag), at most 5 s;
        name the slow ones (a busy host, or a client call that held on to a cancel)."""
        slow, stuck = await wait_cancelled(self._tasks)
        if slow:
            log.warning("worker loops slow to stop: %s (%s)",
                        ", ".join(sorted(t.get_name() for t in slow)),
                        f"{len(stuck)} still running after 5 s" if stuck else "stopped")

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
            except Exception as exc:
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    # the stream or its group is gone (deleted, or lost in a failover):
                    # every step that reads it (reclaim, held, fetch) fails until it is back
                    log.warning("consumer group missing in %s (%s); recreating it",
                                ", ".join(self.queues), exc)
                    await self._until_connected(
                        lambda: self.reader.ensure_groups(self.queues))
                    continue
                log.exception("unexpected error in the read loop; going on")
                await asyncio.sleep(backoff.next())

    async def _read_once(self) -> None:
        await self.pool.wait_for_slot()
        queues = self.housekeeping.unpaused()
        if not self.stopping and await self.fetcher.reclaim(queues):
            return  # reclaimed work first; there may be more
        if self._held and await self.fetcher.deliver_held(self._held.pop()):
            return
        if not queues:  # every queue paused: a burst run treats them as empty
            if self._burst and await self.drained():
                self._finish_burst()
            else:
                await asyncio.sleep(0.1)
            return
        if self._recheck:  # a read's reply was lost: what it took is pending for us,
            self._recheck = False  # undelivered: each queue's pending entries, one by one
            self._held.update(queues)
            return
        if await self.fetcher.fetch():
            return  # busy: fetch again rather than block
        await self._block_and_dispatch(queues)

    async def _block_and_dispatch(self, queues: Sequence[str]) -> None:
        """The blocking read; what it found starts now."""
        self.reader.block_ms = self.housekeeping.reclaims.block_ms(self.options.block_ms,
                                                                   self._burst)
        found = False
        try:
            read = await self.reader.read(queues, self.pool.free, self.fetcher.pending_call)
        except Exception:
            self._recheck = True
            raise
        for q, deliveries in read:
            found = found or bool(deliveries)
            self.dispatch(q, deliveries)
        if found:  # the jobs just read start before the next fetch is sent: less latency
            await asyncio.sleep(0)
        elif self._burst and await self.drained():
            self._finish_burst()

    def _finish_burst(self) -> None:
        self.idle.set()
        self._stopping.set()

    async def drained(self) -> bool:
        """Nothing left for a burst run: no entries, nothing running, nothing due, in the
        queues not paused (a paused queue's work waits for a worker that runs on)."""
        if self.pool.active or self.acker.pending:
            return False
        await self.acker.close()
        now = int(time.time() * 1000)
        pipe = self.conn.aio.pipeline(transaction=False)
        for q in self.housekeeping.unpaused():
            qk = self.keys.queue(q)
            for stream in self._streams_of(q):
                pipe.xlen(stream)
            pipe.zcount(qk.delayed, "-inf", now)
        return not any(await pipe.execute())

    def dispatch(self, queue: str, deliveries: list[Delivery]) -> None:
        """Start each delivery deliver.lua made runnable; record the ones that cannot run."""
        self.reader.given.note(queue, deliveries)
        if deliveries:
            self.housekeeping.reclaims.note_active(queue)
            self.fetcher.note_hot(queue)
        for d in deliveries:
            if d.verdict != "run":
                self._refuse(queue, d)
            elif d.job_id not in self.running:  # else reclaimed from this very worker: running
                self._start(queue, d)

    def _refuse(self, queue: str, d: Delivery) -> None:
        """A delivery that will not run: fail it, or say why it was dropped."""
        if d.verdict == "held":
            self._held.add(queue)
        elif d.verdict == "requeued":
            self.housekeeping.note_paused(queue)
        elif d.verdict == "malformed" and d.entry_id in self._recorded:
            return  # the pending scan sees it till it is acknowledged
        elif d.verdict == "malformed":
            self._recorded.append(d.entry_id)
        outcome = refusal(queue, d, self.options.max_deliveries, self.keys)
        if outcome is not None:
            self.acker.add(queue, outcome)

    def _start(self, queue: str, d: Delivery) -> None:
        try:
            msg = to_message(queue, d)
        except failures.UNREADABLE as exc:
            self.acker.add(queue, failed(queue, d, failures.unreadable(queue, d.job_id,
                                                                         d.fields, exc)))
            return
        mctx = MessageContext(self.name, msg.deliveries)
        task = self.pool.spawn(self._run(msg, mctx, d.lane))
        self.running[msg.id] = Running(queue, d.entry_id, task, mctx.cancel, d.lane)

    def cancel(self, job_id: str) -> None:
        """Ask a running job to stop: ``ctx.cancelled`` turns true and an async handler gets
        ``CancelledError`` (a sync one is abandoned); it ends ``cancelled``."""
        running = self.running.get(job_id)
        if running is not None and not running.cancel.requested:
            log.info("job %s in %r: cancellation requested, stopping it", job_id, running.queue)
            running.cancel.requested = True
            running.task.cancel()

    async def _run(self, msg: Message, ctx: MessageContext, lane: int) -> None:
        try:
            outcome = await self.handler(msg, ctx)
        except asyncio.CancelledError:
            self.running.pop(msg.id, None)
            raise  # shutting down: the entry stays pending and is handed back
        except Exception as exc:  # the handler is meant to turn errors into outcomes
            log.exception("message handler failed on job %s", msg.id)
            outcome = failures.failed(msg.entry_id, msg.id, exc, msg.attempt, msg.queue, msg.name)
        self.running.pop(msg.id, None)  # from here on, a cancel request has nothing to stop
        self.acker.add(msg.queue, on_lane(lane, outcome))

