"""Batcher: a buffer and one flusher task (group commit), used by every background writer.

Items are added one by one; a single task writes whatever accumulated while the
previous write was on the wire, so under load one round trip carries many items
and when idle an item goes out at once, with no added delay. The acker, the DLQ
writer and a running task's log/progress updates all write this way.

With a ``linger`` (the acker's ``ack_linger_ms``), a write of fewer than ``fill`` items
first waits that long for more: at low concurrency, where each write would carry one
item, a few milliseconds buy writes of several (each a script call, whose fixed cost is
most of what one item costs Redis). :meth:`Batcher.drain` and :meth:`Batcher.close`
never wait for it.

A failed write goes to ``retry(batch, error, failures)``: a delay in seconds puts
the batch back in front and tries again after it; ``None`` gives the batch up (the
callback has said why) and carries on with the rest. Without ``retry`` the error
ends the flush and reaches whoever awaits :meth:`Batcher.drain`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Write = Callable[[list[T]], Awaitable[None]]
Retry = Callable[[Sequence[T], Exception, int], float | None]

log = logging.getLogger("django_remq.batcher")


class Batcher(Generic[T]):
    """Call :meth:`add` on the event loop; ``ready`` (if given) is awaited before the
    first write (e.g. a job must be marked processing before its log lines land)."""

    def __init__(self, write: Write[T], *, retry: Retry[T] | None = None,
                 ready: Awaitable[Any] | None = None,
                 loop: asyncio.AbstractEventLoop | None = None,
                 linger: float = 0.0, fill: int = 1) -> None:
        self._write, self._retry, self._ready, self._loop = write, retry, ready, loop
        self._items: list[T] = []
        self._sending: Sequence[T] = ()  # the batch on the wire
        self._flusher: asyncio.Task[None] | None = None
        self._linger, self._fill = linger, fill
        self._filled: asyncio.Future[None] | None = None  # while lingering: done when full
        self._hurry = 0  # drains and closes under way: no lingering meanwhile

    @property
    def pending(self) -> int:
        """Items not written yet (including a batch on the wire)."""
        return len(self._items) + len(self._sending)

    @property
    def busy(self) -> bool:
        return self._flusher is not None and not self._flusher.done()

    def add(self, item: T) -> None:
        self._items.append(item)
        if self._filled is not None and len(self._items) >= self._fill:
            self._stop_lingering()
        if not self.busy:
            loop = self._loop or asyncio.get_running_loop()
            self._flusher = loop.create_task(self._flush())

    async def _flush(self) -> None:
        if self._ready is not None:
            await asyncio.shield(self._ready)
        failures = 0
        while self._items:
            await self._gather()
            batch, self._items = self._items, []
            self._sending = batch
            try:
                await self._write(batch)
            except Exception as exc:
                if self._retry is None:
                    self._sending = ()
                    raise
                failures += 1
                delay = self._retry(batch, exc, failures)
                self._sending = ()
                if delay is None:
                    failures = 0
                    continue
                self._items[:0] = batch  # ahead of anything added meanwhile
                await asyncio.sleep(delay)
                continue
            self._sending = ()
            failures = 0

    async def _gather(self) -> None:
        """Linger: wait up to ``linger`` seconds for ``fill`` items (not while hurried)."""
        if self._linger <= 0 or self._hurry or len(self._items) >= self._fill:
            return
        loop = asyncio.get_running_loop()
        self._filled = filled = loop.create_future()
        timer = loop.call_later(self._linger, self._stop_lingering)
        try:
            await filled
        finally:
            timer.cancel()
            self._filled = None

    def _stop_lingering(self) -> None:
        if self._filled is not None and not self._filled.done():
            self._filled.set_result(None)

    async def drain(self) -> None:
        """Wait until everything added so far is written; a write error is raised here."""
        self._hurry += 1
        self._stop_lingering()
        try:
            while self.busy:
                assert self._flusher is not None
                await self._flusher
        finally:
            self._hurry -= 1

    async def close(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` for the buffer to reach Redis; ``False`` if it did not
        (the flusher is then cancelled: what it held is left to at-least-once). The
        batcher stays usable (a burst run's check for work left closes it, then goes on)."""
        self._hurry += 1
        self._stop_lingering()
        try:
            if self.busy:
                assert self._flusher is not None
                try:
                    await asyncio.wait_for(asyncio.shield(self._flusher), timeout)
                except TimeoutError:
                    self._flusher.cancel()
                    return False
                except Exception:
                    log.exception("background write failed")
            return not self._items
        finally:
            self._hurry -= 1
