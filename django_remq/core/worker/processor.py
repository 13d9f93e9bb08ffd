"""Processor: the policy layer over the Consumer.

It turns a delivered message into an outcome: finds the handler, runs it (on the
loop, or in a thread for plain ``def`` handlers), applies timeouts and the retry
policy, and reports live events. The Consumer does the reading and acknowledging.
Debounce, cron repeat and the DLQ live in their own modules; this one only calls
them (:mod:`.debounce`, :mod:`.cron`, :mod:`.dlq`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .. import jsonutil
from ..errors import JobCancelled, TaskTimeout, UnknownEvent
from ..options import retries_of
from ..policies import dlq, failures
from ..policies.cron import CronScheduler, Schedule, timezone
from ..policies.debounce import DebounceManager
from ..policies.dlq import DeadLetterWriter
from ..settings import ProcessorSettings
from ..store.connection import Connection
from ..store.keys import Keys
from ..store.ops import Outcome
from ..types import Message, MessageContext
from .consumer import Consumer, ConsumerOptions
from .task import EventSink, HandlerContext, Task, TaskUpdates

if TYPE_CHECKING:
    from ..task_manager import TaskManager

log = logging.getLogger("django_remq.processor")

MAX_RESULT_CHARS = 65_536
class Processor:
    def __init__(self, manager: TaskManager, conn: Connection, *, concurrency: int = 1,
                 queues: Sequence[str] = ("default",), prefix: str = "remq",
                 settings: ProcessorSettings = ProcessorSettings(),
                 ctx: Mapping[str, Any] | None = None, events: EventSink | None = None) -> None:
        self.manager = manager
        self.conn = conn
        self.settings = settings
        self.ctx = ctx or {}
        self.events = events
        self._live: dict[str, tuple[str, bool]] = {}  # job id -> (event, watched)
        self.keys = Keys(prefix)
        self.executor: ThreadPoolExecutor | None = None
        self.debounce = DebounceManager(conn, self.keys)
        self.dead_letters = (None if settings.dlq is None else DeadLetterWriter(
            conn, self.keys, settings.dlq.stream(self.keys), settings.dlq.maxlen))
        self.cron = CronScheduler(conn, self.keys, [
            Schedule(e.queue, e.event, e.repeat) for e in manager.handlers
            if e.repeat is not None and e.queue in queues], timezone(settings.timezone))
        self.consumer = Consumer(conn, self.handle, ConsumerOptions(
            queues=tuple(queues), concurrency=concurrency, prefix=prefix,
            claim_idle_ms=settings.claim_idle_ms, max_deliveries=settings.max_deliveries,
            retention=settings.retention, shutdown_timeout_ms=settings.shutdown_timeout_ms,
            priority_aging_ms=settings.priority_aging_ms,
        ), on_applied=self._applied)

    async def start(self, *, burst: bool = False) -> None:
        if self.executor is None:
            self.executor = ThreadPoolExecutor(self.consumer.options.concurrency,
                                               thread_name_prefix="remq-task")
        await self.consumer.start(burst=burst)
        if not burst:
            self.cron.start()

    def stop(self) -> None:
        self.consumer.stop()

    async def close(self) -> None:
        await self.cron.stop()
        await self.consumer.close()
        if self.dead_letters is not None:
            await self.dead_letters.close()
        self.cleanup()

    async def wait_for_active_tasks(self, timeout: float | None = None) -> bool:
        return await self.consumer.wait_for_active_tasks(timeout)

    def cleanup(self) -> None:
        """Release the thread pool (abandoned sync handlers finish in the background)."""
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = None

    async def handle(self, message: Message, mctx: MessageContext) -> Outcome:
        entry = self.manager.handler_for(message.queue, message.name)
        if entry is None:
            known = self.manager.events_in(message.queue)
            exc = UnknownEvent(
                f"no handler for event {message.name!r} in queue {message.queue!r}; registered "
                f"there: {', '.join(known) or 'none'}")
            return failures.failed(message.entry_id, message.id, exc, message.attempt,
                                   message.queue, message.name)
        options = {**entry.options, **message.options}
        if self.events is not None:  # what its retry/finished events need (see _applied)
            self._live[message.id] = (message.name, message.watched)
        loop = asyncio.get_running_loop()
        updates = TaskUpdates(self.conn, self.keys.queue(message.queue), message.id,
                              self.settings.max_logs_per_task, loop, ready=mctx.marked)
        task = Task(message, options, updates)
        if entry.debounce is not None:
            skipped = await self.debounce.check(message, entry.debounce, task.logger)
            if skipped is not None:
                await updates.drain()
                return skipped
        ctx = HandlerContext(self.manager, task, updates, self.ctx, self.events, mctx.cancel)
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
        return Outcome(message.entry_id, message.id, "completed", _result_fields(result))

    async def _invoke(self, fn: Any, task: Task, ctx: HandlerContext,
                      timeout_ms: int | None) -> Any:
        timeout = timeout_ms / 1000 if timeout_ms else None
        if inspect.iscoroutinefunction(fn):
            aw = fn(task, ctx)
        else:
            loop = asyncio.get_running_loop()
            aw = loop.run_in_executor(self.executor, functools.partial(fn, task, ctx))
        try:
            result = await asyncio.wait_for(aw, timeout) if timeout else await aw
        except TimeoutError:
            raise TaskTimeout(f"handler {task.name!r} ran past timeout_ms={timeout_ms}") from None
        if inspect.isawaitable(result):
            result = await result
        return result

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
        """The DLQ entry of a job that failed for good, if the DLQ wants it."""
        if self.settings.dlq is None or not self.settings.dlq.wants(message, exc, message.attempt):
            return None
        return dlq.entry(message.id, message.queue, message.name, reason, dlq.describe(exc),
                         message.attempt)

    def _applied(self, queue: str, outcome: Outcome, applied: bool) -> None:
        if applied and outcome.dead is not None and self.dead_letters is not None:
            self.dead_letters.add(outcome.dead)
        if self.events is None:
            return
        name, watched = self._live.pop(outcome.job_id, ("", False))
        if not applied:
            return
        error = jsonutil.loads(outcome.error)["message"] if outcome.error else None
        if outcome.kind == "retry":
            delay = max((outcome.run_at_ms or 0) - int(time.time() * 1000), 0)
            self.events({"type": "task_retry", "taskId": outcome.job_id, "event": name,
                         "queue": queue, "error": error,
                         "retryCount": int(outcome.fields["retry_count"]),
                         "retryDelayMs": delay, "watched": watched})
        else:
            status = "failed" if outcome.kind == "malformed" else outcome.kind
            self.events({"type": "task_finished", "taskId": outcome.job_id, "event": name,
                         "queue": queue, "status": status, "error": error, "watched": watched})


def _result_fields(result: Any) -> dict[str, str]:
    if result is None:
        return {}
    try:
        text = jsonutil.dumps(result)
    except (TypeError, ValueError):
        text = jsonutil.dumps(repr(result))
    if len(text) > MAX_RESULT_CHARS:
        text = jsonutil.dumps(f"<result of {len(text)} characters, over {MAX_RESULT_CHARS}: "
                              "not stored; keep large results elsewhere and return a reference>")
    return {"result": text}
