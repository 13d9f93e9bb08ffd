"""What a handler receives: the ``task`` and the ``ctx``.

Log lines and progress updates are queued in order and written by one flusher
per task (update.lua), so a handler never waits on Redis to log, and both sync
handlers (in threads) and async ones (on the loop) use the same path. The task
is acknowledged only after its updates are written.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .. import jsonutil
from ..options import MAX_PAYLOAD_BYTES, check_payload
from ..store import calls
from ..store.connection import Connection
from ..store.keys import QueueKeys
from ..store.scripts import arun
from ..types import CancelToken, EmitOptions, Message
from .batcher import Batcher

#: Receives live events (``task_update`` / ``task_retry`` / ``task_finished``, the
#: original's shapes plus ``extra``: the job's extra record fields the sink asked for),
#: always on the worker's loop; must not block. A sink may also have ``extra_fields``
#: (record fields to carry with each job, see ``TaskManager.prepare``'s ``extra``) and
#: ``async aclose()`` (awaited once the worker stopped: send what is queued).
EventSink = Callable[[dict[str, Any]], Any]
#: A log line's message is cut to this many characters, with a marker saying so: the
#: record keeps ``max_logs_per_task`` lines, and the job page shows them all.
MAX_LOG_CHARS = 16_384


class EmitFn(Protocol):
    def __call__(self, event: str, data: Any = None, queue: str | None = None,
                 options: EmitOptions | None = None) -> str: ...


class EmitSoonFn(Protocol):
    def __call__(self, event: str, data: Any = None, queue: str | None = None,
                 options: EmitOptions | None = None) -> tuple[str, asyncio.Future[Any]]: ...


class AemitFn(Protocol):
    def __call__(self, event: str, data: Any = None, queue: str | None = None,
                 options: EmitOptions | None = None) -> Awaitable[str]: ...


@dataclass(frozen=True)
class Emitter:
    """How ``ctx`` emits follow-up tasks (the TaskManager's emit, given, not reached for).

    Each takes ``(event, data, queue, options)``, as every emit does: ``emit`` blocks
    (from a handler's thread); ``emit_soon`` (on the loop) returns the id and the write
    in flight; ``aemit`` awaits it."""

    emit: EmitFn
    emit_soon: EmitSoonFn
    aemit: AemitFn


class TaskUpdates:
    """The ordered log/progress writes of one running task (a :class:`Batcher`)."""

    def __init__(self, conn: Connection, qk: QueueKeys, job_id: str, max_logs: int,
                 loop: asyncio.AbstractEventLoop, ready: Awaitable[Any] | None = None,
                 max_bytes: int | None = MAX_PAYLOAD_BYTES) -> None:
        self.conn, self.qk, self.job_id, self.max_logs = conn, qk, job_id, max_logs
        self.max_bytes = max_bytes  # of one progress update's JSON (max_payload_bytes)
        self.loop = loop
        self.loop_thread = threading.get_ident()  # made on the loop, by the processor
        self._ready = ready  # writes wait for the job to be marked processing
        # made on the first write: most tasks never log (the hot path makes one per task)
        self._batcher: Batcher[tuple[str, str]] | None = None
        self._pending: set[asyncio.Future[Any]] = set()

    def push(self, kind: str, value: Any, where: str) -> None:
        """Queue a write; callable from the loop or from a handler's thread. The value is
        encoded and measured here, in the handler's own thread, so what cannot be stored
        (not JSON, over ``max_bytes``) is the handler's error, named by ``where``."""
        text = jsonutil.dumps_data(value, where)
        if self.max_bytes is not None and len(text) > self.max_bytes // 4:
            check_payload(text, self.max_bytes, where)
        if threading.get_ident() == self.loop_thread:
            self._push(kind, text)
        else:
            self.loop.call_soon_threadsafe(self._push, kind, text)

    def _push(self, kind: str, text: str) -> None:
        if self._batcher is None:
            self._batcher = Batcher(self._write, ready=self._ready, loop=self.loop)
        self._batcher.add((kind, text))

    def track(self, fut: asyncio.Future[Any]) -> None:
        """Something the task started (a follow-up emit) that must land before its ack."""
        self._pending.add(fut)
        # a long task that emits often keeps only the writes still in flight
        fut.add_done_callback(self._pending.discard)

    async def _write(self, items: list[tuple[str, str]]) -> None:
        await arun(self.conn.aio, calls.update(self.qk, self.job_id, items, self.max_logs),
                   self.conn.aline)

    async def drain(self) -> None:
        """Wait for every queued write and tracked follow-up (errors are the caller's).

        The set is taken, not left for the done-callbacks to empty: awaiting futures that
        are all done need not give the loop a turn (it does not since Python 3.12), and
        then those callbacks never run."""
        while True:
            if self._batcher is not None and self._batcher.busy:
                await self._batcher.drain()
            elif self._pending:
                pending, self._pending = self._pending, set()
                await asyncio.gather(*pending)
            else:
                return


class Task:
    """The running job, as a handler sees it (``task.id``, ``task.data``, ``task.logger``)."""

    def __init__(self, message: Message, options: dict[str, Any], updates: TaskUpdates) -> None:
        self.id = message.id
        self.name = message.name
        self.queue = message.queue
        self.data = message.data
        self.options = options
        self.attempt = message.attempt
        self.extra = message.extra  # the extra record fields carried (EventSink)
        self._updates = updates

    def __repr__(self) -> str:
        return f"<Task {self.name} id={self.id} queue={self.queue} attempt={self.attempt}>"

    def logger(self, message: Any) -> None:
        """Append a log line to the job record (capped by ``max_logs_per_task``; a line
        over ``MAX_LOG_CHARS`` characters is cut, with a marker)."""
        text = message if isinstance(message, str) else jsonutil.dumps(message)
        if len(text) > MAX_LOG_CHARS:
            text = (f"{text[:MAX_LOG_CHARS]} [... log line cut: {len(text):,} characters, "
                    f"over the {MAX_LOG_CHARS:,} kept]")
        self._updates.push("log", {"message": text, "timestamp": int(time.time() * 1000)},
                           f"task.logger in job {self.id}")


class Socket:
    """``ctx.socket``: live updates to the worker's event sink (``expose``)."""

    def __init__(self, task: Task, updates: TaskUpdates, events: EventSink | None) -> None:
        self._task, self._updates, self._events = task, updates, events

    def update(self, data: Any, progress: float | None = None) -> None:
        """Store ``{data, progress}`` on the job and send it live; no progress is 0, as
        the original remq's (its clients read a number)."""
        if progress is None:
            progress = 0
        self._updates.push("progress", {"data": data, "progress": progress},
                           f"ctx.socket.update in job {self._task.id}")
        if self._events is None:
            return
        t = self._task
        event = {"type": "task_update", "taskId": t.id, "id": t.id, "event": t.name,
                 "queue": t.queue, "data": data, "progress": progress, "extra": t.extra}
        if threading.get_ident() == self._updates.loop_thread:
            self._events(event)
        else:  # a sync handler's thread: sinks are only ever called on the loop, in order
            self._updates.loop.call_soon_threadsafe(self._events, event)


class HandlerContext(Mapping[str, Any]):
    """``ctx``: ``emit``/``aemit`` for follow-up tasks, ``socket`` for live updates, and
    the entries of the user's ctx (``ctx.db`` or ``ctx["db"]``)."""

    def __init__(self, emitter: Emitter, task: Task, updates: TaskUpdates,
                 user: Mapping[str, Any], events: EventSink | None,
                 cancel: CancelToken | None = None, worker_id: str = "") -> None:
        self._emitter, self._updates, self._user = emitter, updates, user
        self._events = events
        self._socket: Socket | None = None
        self.task = task
        self._cancel = cancel or CancelToken()
        #: this worker's id, as in ``Sdk.get_workers()`` and the job record's ``worker``
        self.worker_id = worker_id

    @property
    def socket(self) -> Socket:
        """Live updates to the worker's event sink (made on first use)."""
        if self._socket is None:
            self._socket = Socket(self.task, self._updates, self._events)
        return self._socket

    @property
    def cancelled(self) -> bool:
        """True once someone asked this job to stop: a sync handler should check it and
        return early (an async one gets ``CancelledError`` too)."""
        return self._cancel.requested

    def __getattr__(self, name: str) -> Any:
        try:
            return self._user[name]
        except KeyError:
            raise AttributeError(f"ctx has no entry {name!r} (ctx entries: "
                                 f"{', '.join(self._user) or 'none'})") from None

    def __getitem__(self, key: str) -> Any:
        return self._user[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._user)

    def __len__(self) -> int:
        return len(self._user)

    def emit(self, event: str, data: Any = None, queue: str | None = None,
             options: EmitOptions | None = None) -> str:
        """Emit a follow-up task; on the event loop it is written before this task's ack."""
        if threading.get_ident() != self._updates.loop_thread:
            return self._emitter.emit(event=event, data=data, queue=queue, options=options)
        job_id, fut = self._emitter.emit_soon(event=event, data=data, queue=queue,
                                              options=options)
        self._updates.track(fut)
        return job_id

    async def aemit(self, event: str, data: Any = None, queue: str | None = None,
                    options: EmitOptions | None = None) -> str:
        return await self._emitter.aemit(event=event, data=data, queue=queue, options=options)
