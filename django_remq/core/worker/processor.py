"""Processor: the policy layer over the Consumer.

It turns a delivered message into an outcome: finds the handler, runs it (on the
loop, or on a slot thread for plain ``def`` handlers, :mod:`.threads`), applies
timeouts and the retry policy, and reports live events. The Consumer does the
reading and acknowledging. Debounce, cron repeat and the DLQ live in their own
modules; this one only calls them (:mod:`.debounce`, :mod:`.cron`, :mod:`.dlq`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .. import jsonutil
from ..errors import JobCancelled, PayloadTooLarge, TaskTimeout, UnknownEvent
from ..handlers import HandlerRegistry
from ..options import MAX_PAYLOAD_BYTES, check_payload, retries_of
from ..policies import dlq, failures
from ..policies.cron import CronScheduler, Schedule, timezone
from ..policies.debounce import DebounceManager
from ..settings import ProcessorSettings
from ..store.calls import Outcome
from ..store.connection import Connection
from ..store.keys import Keys
from ..store.replicas import ReplicaWait
from ..types import Message, MessageContext
from .consumer_options import ConsumerOptions
from .shared_core import SUPPORTED as CAN_PIN
from .shared_core import SharedCore
from .stream_consumer import Consumer
from .task import Emitter, EventSink, HandlerContext, Task, TaskUpdates
from .threads import SlotThreads

log = logging.getLogger("django_remq.processor")


class Processor:
    """Runs the handlers of ``registry`` for the deliveries of a Consumer it owns;
    ``emitter`` is how handlers' ``ctx.emit`` enqueues follow-ups. ``events`` gets the
    live events; ``extra_fields``: record fields each job carries back (``task.extra``)
    and its events carry as ``"extra"``, for whoever wrote them."""

    def __init__(self, registry: HandlerRegistry, emitter: Emitter, conn: Connection, *,
                 concurrency: int = 1, queues: Sequence[str] = ("default",),
                 prefix: str = "remq", settings: ProcessorSettings = ProcessorSettings(),
                 ctx: Mapping[str, Any] | None = None, events: EventSink | None = None,
                 replica_wait: ReplicaWait | None = None,
                 max_payload_bytes: int | None = MAX_PAYLOAD_BYTES,
                 extra_fields: Sequence[str] = ()) -> None:
        self.registry = registry
        self.max_payload_bytes = max_payload_bytes  # a larger result fails the job
        self.emitter = emitter
        self.conn = conn
        self.settings = settings
        self.ctx = ctx or {}
        self.events = events
        # job id -> (event, extra fields): what its task_retry / task_finished carry
        self._live: dict[str, tuple[str, dict[str, str]]] = {}
        self._is_async: dict[Any, bool] = {}  # handler -> is it ``async def`` (asked per task)
        self.keys = Keys(prefix)
        self.threads = SlotThreads(concurrency, on_overflow=self._threads_exhausted,
                                   core=SharedCore() if settings.pin_threads and CAN_PIN
                                   else None)
        self.exhausted = asyncio.Event()  # set when stuck sync handlers used up the threads
        self.exhausted_reason = ""
        self.debounce = DebounceManager(conn, self.keys)
        self.cron = CronScheduler(conn, self.keys, [
            Schedule(e.queue, e.event, e.repeat) for e in registry.entries
            if e.repeat is not None and e.queue in queues], timezone(settings.timezone))
        self.tasks = {"tasks_run": 0, "tasks_failed": 0}  # since start, in the heartbeat
        self.consumer = Consumer(conn, self.handle, ConsumerOptions(
            queues=tuple(queues), concurrency=concurrency, prefix=prefix,
            claim_idle_ms=settings.claim_idle_ms, max_deliveries=settings.max_deliveries,
            retention=settings.retention, shutdown_timeout_ms=settings.shutdown_timeout_ms,
            priority_aging_ms=settings.priority_aging_ms, extra_fields=tuple(extra_fields),
            ack_linger_ms=settings.ack_linger_ms,
        ), on_applied=self._applied, dlq=settings.dlq, replica_wait=replica_wait,
            report=lambda: dict(self.tasks))  # dead letters go with the failure; with
        # wait_replicas acks wait too; the heartbeat carries the counts

    async def start(self, *, burst: bool = False) -> None:
        await self.consumer.start(burst=burst)
        if not burst:
            self.cron.start()

    def stop(self) -> None:
        """Stop taking new work; what runs goes on (:meth:`wait_for_active_tasks`)."""
        self.consumer.stop()

    async def close(self) -> None:
        """Graceful stop: running tasks finish up to the shutdown timeout, the rest are
        handed back at once; then :meth:`cleanup`."""
        await self.cron.stop()
        await self.consumer.close()
        self.cleanup()

    async def wait_for_active_tasks(self, timeout: float | None = None) -> bool:
        """Wait for running tasks and their acknowledgements; ``False`` on timeout."""
        return await self.consumer.wait_for_active_tasks(timeout)

    def cleanup(self) -> None:
        """Let the idle sync-handler threads go (abandoned ones end when their call returns;
        they are daemons, so none keeps the process alive)."""
        self.threads.close()

    def _threads_exhausted(self, abandoned: int) -> None:
        if self.exhausted.is_set():
            return
        self.exhausted_reason = (
            f"{abandoned} sync handlers are still running past their timeout_ms (over the cap "
            f"of {self.threads.max_abandoned}, the concurrency); Python cannot stop a thread, "
            "so this worker stops taking work and exits for a fresh one to replace it. Make "
            "those handlers return (check ctx.cancelled, use client timeouts).")
        log.error("%s", self.exhausted_reason)
        self.stop()
        self.exhausted.set()

    async def handle(self, message: Message, mctx: MessageContext) -> Outcome:
        if not log.isEnabledFor(logging.DEBUG):
            return await self._handle(message, mctx)
        log.debug("task started: %s %s (queue %s, attempt %d)", message.name, message.id,
                  message.queue, message.attempt)
        t0 = time.perf_counter()
        outcome = await self._handle(message, mctx)
        log.debug("task ended: %s %s %s in %.1f ms", message.name, message.id, outcome.kind,
                  (time.perf_counter() - t0) * 1000)
        return outcome

    async def _handle(self, message: Message, mctx: MessageContext) -> Outcome:
        entry = self.registry.get(message.queue, message.name)
        if entry is None:
            known = self.registry.events_in(message.queue)
            exc = UnknownEvent(
                f"no handler for event {message.name!r} in queue {message.queue!r}; registered "
                f"there: {', '.join(known) or 'none'}")
            return failures.failed(message.entry_id, message.id, exc, message.attempt,
                                   message.queue, message.name)
        options = {**entry.options, **message.options}
        if self.events is not None:  # what its retry/finished events need (see _applied)
            self._live[message.id] = (message.name, message.extra)
        loop = asyncio.get_running_loop()
        updates = TaskUpdates(self.conn, self.keys.queue(message.queue), message.id,
                              self.settings.max_logs_per_task, loop, ready=mctx.marked,
                              max_bytes=self.max_payload_bytes)
        task = Task(message, options, updates)
        if entry.debounce is not None:
            skipped = await self.debounce.check(message, entry.debounce, task.logger)
            if skipped is not None:
                await updates.drain()
                return skipped
        ctx = HandlerContext(self.emitter, task, updates, self.ctx, self.events, mctx.cancel,
                             self.consumer.name)
        try:
            result = await self._invoke(entry.fn, task, ctx, options.get("timeout_ms"))
        except asyncio.CancelledError:
            if not mctx.cancel.requested:
                raise  # the worker is shutting down: the job is handed back
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            await updates.drain()
            return Outcome(message.entry_id, message.id, "cancelled", error=failures.error_json(
                JobCancelled(f"job {message.id} was cancelled while running"), message.attempt))
        except Exception as exc:
            await updates.drain()
            return self._failure(message, options, exc)
        await updates.drain()
        try:
            fields = self._result_fields(result, message)
        except PayloadTooLarge as exc:  # not stored: the job fails, as for any error
            return self._failure(message, options, exc)
        return Outcome(message.entry_id, message.id, "completed", fields)

    async def _invoke(self, fn: Any, task: Task, ctx: HandlerContext,
                      timeout_ms: int | None) -> Any:
        if not timeout_ms:
            return await self._call(fn, task, ctx)
        deadline = asyncio.timeout(timeout_ms / 1000)
        try:
            async with deadline:
                return await self._call(fn, task, ctx)
        except TimeoutError:
            if not deadline.expired():
                raise  # the handler's own TimeoutError (a socket...): an ordinary failure
            raise TaskTimeout(f"handler {task.name!r} ran past timeout_ms={timeout_ms}") from None

    async def _call(self, fn: Any, task: Task, ctx: HandlerContext) -> Any:
        is_async = self._is_async.get(fn)
        if is_async is None:
            is_async = self._is_async[fn] = inspect.iscoroutinefunction(fn)
        if is_async:
            return await fn(task, ctx)
        call = self.threads.submit(fn, task, ctx)
        try:
            result = await call.future
        except asyncio.CancelledError:  # timed out, a cancel request, or shutdown
            self.threads.abandon(call)
            raise
        if inspect.isawaitable(result):  # a plain function that returned a coroutine
            result = await result
        return result

    def _result_fields(self, result: Any, message: Message) -> dict[str, str]:
        if result is None:
            return {}
        try:
            text = jsonutil.dumps(result)
        except (TypeError, ValueError):
            text = jsonutil.dumps(repr(result))
        if self.max_payload_bytes is not None and len(text) > self.max_payload_bytes // 4:
            check_payload(text, self.max_payload_bytes,
                          f"the result of handler {message.name!r} (job {message.id})")
        return {"result": text}

    def _failure(self, message: Message, options: Mapping[str, Any], exc: Exception) -> Outcome:
        # after a first retry the record holds the count left; before, the options say
        retries_left = (message.retry_count if message.retry_count is not None
                        else retries_of(options))
        decision = self.settings.retry.decide(
            exc, retries_left, message.retried_attempts, options.get("retry_delay_ms"))
        delay = decision.delay_ms
        error = failures.error_json(exc, message.attempt)
        if delay is None:
            log.warning("job %s (%s) failed (%s): %s: %s", message.id, message.name,
                        decision.reason, type(exc).__name__, exc)
            return Outcome(message.entry_id, message.id, "failed", error=error,
                           dead=self._dead(message, exc, str(decision.reason)))
        log.info("job %s (%s) failed, retrying in %d ms (%d left): %s", message.id, message.name,
                 delay, retries_left - 1, exc)
        fields = {"retry_count": str(retries_left - 1),
                  "retried_attempts": str(message.attempt)}
        return Outcome(message.entry_id, message.id, "retry", fields,
                       run_at_ms=int(time.time() * 1000) + delay, error=error)

    def _dead(self, message: Message, exc: Exception, reason: str) -> dict[str, str] | None:
        """The DLQ entry of a job that failed for good, if the DLQ wants it (asked here,
        before the finish call: finish.lua writes the entry, it cannot call Python). The
        predicate gets the retries done, as the original remq passes (a ported
        ``attempts >= 3`` means "after 3 retries"), not this attempt's number."""
        dead = self.settings.dlq
        if dead is None or not dead.wants(message, exc, message.retried_attempts):
            return None
        return dlq.entry(message.id, message.queue, message.name, reason, dlq.describe(exc),
                         message.attempt)

    def _applied(self, queue: str, outcome: Outcome, applied: bool) -> None:
        if applied:  # a run ended (a failure to retry too)
            self.tasks["tasks_run"] += 1
            self.tasks["tasks_failed"] += outcome.kind in ("failed", "retry", "malformed")
        if self.events is None:
            return
        name, extra = self._live.pop(outcome.job_id, ("", {}))
        if not applied:
            return
        error = jsonutil.loads(outcome.error)["message"] if outcome.error else None
        if outcome.kind == "retry":
            delay = max((outcome.run_at_ms or 0) - int(time.time() * 1000), 0)
            self.events({"type": "task_retry", "taskId": outcome.job_id, "event": name,
                         "queue": queue, "error": error,
                         "retryCount": int(outcome.fields["retry_count"]),
                         "retryDelayMs": delay, "extra": extra})
        else:
            status = "failed" if outcome.kind == "malformed" else outcome.kind
            self.events({"type": "task_finished", "taskId": outcome.job_id, "event": name,
                         "queue": queue, "status": status, "error": error, "extra": extra})
