"""ConcurrencyPool: bounds how many handlers run at once on one worker."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class ConcurrencyPool:
    """Runs coroutines as tasks, never more than ``size`` at a time.

    The reader asks :attr:`free` before reading, so a worker never takes more
    entries from Redis than it can start at once (no hoarding of work that a
    sibling worker could run).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"concurrency must be >= 1, got {size}")
        self.size = size
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()

    @property
    def active(self) -> int:
        return len(self._tasks)

    @property
    def free(self) -> int:
        return self.size - len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        if self.free <= 0:
            coro.close()
            raise RuntimeError("ConcurrencyPool is full; await wait_for_slot() first")
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._changed.set()

    async def wait_for_slot(self) -> None:
        while self.free <= 0:
            self._changed.clear()
            await self._changed.wait()

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing runs; ``False`` if the timeout came first."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return not pending

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
