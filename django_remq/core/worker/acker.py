"""Acker: applies finished jobs' outcomes in batches, one finish.lua call per queue.

Handlers finish one by one, but a worker acknowledges them together: whatever
finished while the previous batch was on the wire goes in the next one (group
commit). Under load that is one round trip for many tasks; when idle, a single
task is acknowledged at once, with no added delay. If Redis is away the
outcomes are kept and retried: the entries stay pending until then, so a crash
meanwhile only means the tasks run again (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..store import ops
from ..store.connection import Connection
from ..store.keys import Keys
from ..store.ops import Outcome, Retention
from ..store.scripts import arun_many
from .reconnect import Backoff

log = logging.getLogger("django_remq.acker")

OnApplied = Callable[[str, Outcome, bool], None]


class Acker:
    def __init__(self, conn: Connection, keys: Keys, retention: Retention,
                 on_applied: OnApplied | None = None) -> None:
        self.conn = conn
        self.keys = keys
        self.retention = retention
        self.on_applied = on_applied
        self._buffer: defaultdict[str, list[Outcome]] = defaultdict(list)
        self._flusher: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return sum(len(v) for v in self._buffer.values())

    def add(self, queue: str, outcome: Outcome) -> None:
        self._buffer[queue].append(outcome)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        backoff = Backoff()
        while self._buffer:
            batch, self._buffer = self._buffer, defaultdict(list)
            queues = list(batch)
            calls = [ops.finish(self.keys.queue(q), batch[q], self.retention) for q in queues]
            try:
                replies = await arun_many(self.conn.aio, calls)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                for q in queues:  # put back, ahead of anything added meanwhile
                    self._buffer[q][:0] = batch[q]
                delay = backoff.next()
                log.warning("cannot acknowledge %d finished jobs (%s); retrying in %.1fs",
                            sum(len(v) for v in batch.values()), exc, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if self.on_applied is not None:
                for q, applied in zip(queues, replies, strict=True):
                    for outcome, ok in zip(batch[q], applied, strict=True):
                        self.on_applied(q, outcome, bool(ok))

    async def close(self, timeout: float | None = None) -> bool:
        """Wait for buffered outcomes to reach Redis; ``False`` if some could not."""
        if self._flusher is not None and not self._flusher.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._flusher), timeout)
            except TimeoutError:
                self._flusher.cancel()
                return False
        return not self._buffer
