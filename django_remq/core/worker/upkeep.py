"""A consumer's background duties besides reading.

- promote due delayed jobs to their streams (every ``promote_interval_ms``, or
  sooner when the next due job is nearer);
- renew this worker's running entries so they are not reclaimed (heartbeat), and
  reclaim the entries of workers that stopped renewing theirs;
- publish this worker in the worker registry;
- on shutdown, hand unfinished entries back at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from .. import jsonutil
from ..store import ops
from ..store.keys import GROUP
from ..store.scripts import arun_many
from .loops import repeat

if TYPE_CHECKING:
    from .consumer import Consumer

log = logging.getLogger("django_remq.upkeep")

DEAD_CONSUMER_IDLE_MS = 3_600_000  # consumers idle this long with nothing pending are removed


class Upkeep:
    def __init__(self, consumer: Consumer) -> None:
        self.c = consumer
        self.interval = max(consumer.options.claim_idle_ms / 3000, 0.05)
        self.paused: set[str] = set()  # refreshed with every promote round

    def start(self) -> list[asyncio.Task[None]]:
        loop = asyncio.get_running_loop()
        return [loop.create_task(self._promote_loop(), name="remq-promote"),
                loop.create_task(self._maintain_loop(), name="remq-maintain")]

    def unpaused(self) -> list[str]:
        """The queues to read, as of the last promote round (<= promote_interval_ms old);
        deliver.lua re-checks atomically, so a just-paused queue's entries are put back."""
        return [q for q in self.c.queues if q not in self.paused]

    async def drained(self) -> bool:
        """Nothing left for a burst run: no entries, nothing running, nothing due."""
        if self.c.pool.active or self.c.acker.pending:
            return False
        await self.c.acker.close()
        now = int(time.time() * 1000)
        pipe = self.c.conn.aio.pipeline(transaction=False)
        for q in self.c.queues:
            qk = self.c.keys.queue(q)
            pipe.xlen(qk.stream)
            pipe.zcount(qk.delayed, "-inf", now)
        return not any(await pipe.execute())

    async def promote(self) -> float:
        """Move due jobs to their streams, refresh the paused set; returns seconds to sleep."""
        wait = self.c.options.promote_interval_ms / 1000
        queues = self.c.queues
        calls = [ops.promote(self.c.keys.queue(q)) for q in queues]
        paused = set()
        for q, p in zip(queues, await arun_many(self.c.conn.aio, calls), strict=True):
            if p.next_due_in_ms is not None:
                wait = min(wait, p.next_due_in_ms / 1000)
            if p.paused:
                paused.add(q)
        self.paused = paused
        return wait

    async def _promote_loop(self) -> None:
        await repeat(self.promote, lambda: self.c.stopping, "promoting delayed jobs")

    async def _maintain_loop(self) -> None:
        rounds = 0

        async def step() -> float:
            nonlocal rounds
            await self.renew()
            await self.reclaim()
            await self.heartbeat()
            if rounds % 100 == 0:
                await self.forget_dead_consumers()
            rounds += 1
            return self.interval

        await repeat(step, lambda: self.c.stopping, "worker upkeep", retry_in=self.interval)

    async def renew(self) -> None:
        by_queue: defaultdict[str, list[str]] = defaultdict(list)
        for job_id, running in list(self.c.running.items()):
            by_queue[running.queue].append(job_id)
        if not by_queue:
            return
        opts = self.c.options
        calls = [ops.renew(self.c.keys.queue(q), self.c.name, ids, opts.claim_idle_ms)
                 for q, ids in by_queue.items()]
        for (queue, ids), renewed in zip(by_queue.items(),
                                         await arun_many(self.c.conn.aio, calls), strict=True):
            for job_id in renewed.cancel:
                self.c.cancel(job_id)
            mine = set(renewed.owned)
            for job_id in ids:
                entry = self.c.running.get(job_id)
                if entry and entry.entry_id not in mine:
                    log.warning("job %s in %r was taken over by another worker (this worker "
                                "stalled past claim_idle_ms=%d)", job_id, queue,
                                opts.claim_idle_ms)

    async def reclaim(self) -> None:
        opts = self.c.options
        for queue in self.unpaused():
            free = self.c.pool.free
            if free <= 0 or self.c.stopping:
                return
            call = ops.reclaim(self.c.keys.queue(queue), self.c.name,
                                    min_idle_ms=opts.claim_idle_ms, count=free,
                                    lock_ms=opts.claim_idle_ms, max_deliveries=opts.max_deliveries)
            deliveries = (await arun_many(self.c.conn.aio, [call]))[0]
            if deliveries:
                log.info("reclaimed %d stalled entries in %r", len(deliveries), queue)
                self.c.dispatch(queue, deliveries)

    async def heartbeat(self) -> None:
        keys = self.c.keys
        now = int(time.time() * 1000)
        info: dict[str, Any] = {"id": self.c.name, "host": socket.gethostname(), "pid": os.getpid(),
                "queues": list(self.c.queues), "concurrency": self.c.options.concurrency,
                "running": list(self.c.running), "last_seen": now}
        ttl = int(self.interval * 3000) + 1000
        pipe = self.c.conn.aio.pipeline(transaction=False)
        pipe.set(keys.worker(self.c.name), jsonutil.dumps(info), px=ttl)
        pipe.zadd(keys.workers, {self.c.name: now})
        pipe.zremrangebyscore(keys.workers, "-inf", now - 10 * ttl)
        await pipe.execute()

    async def forget_dead_consumers(self) -> None:
        client = self.c.conn.aio
        for queue in self.c.queues:
            stream = self.c.keys.queue(queue).stream
            for info in await client.xinfo_consumers(stream, GROUP):
                if info["pending"] == 0 and info["idle"] > DEAD_CONSUMER_IDLE_MS:
                    await client.xgroup_delconsumer(stream, GROUP, info["name"])

    async def release(self) -> None:
        """Make this consumer's unfinished entries reclaimable now, and leave the registry."""
        client = self.c.conn.aio
        try:
            for queue in self.c.queues:
                stream = self.c.keys.queue(queue).stream
                pending = await client.xpending_range(stream, GROUP, "-", "+", 10_000,
                                                      consumername=self.c.name)
                ids: list[Any] = [p["message_id"] for p in pending]
                if ids:
                    await client.xclaim(stream, GROUP, self.c.name, 0, ids,
                                        idle=self.c.options.claim_idle_ms, justid=True)
                    log.info("handed back %d unfinished entries in %r", len(ids), queue)
            await client.zrem(self.c.keys.workers, self.c.name)
            await client.delete(self.c.keys.worker(self.c.name))
        except Exception as exc:
            log.warning("could not hand back unfinished entries (%s); they will be reclaimed "
                        "after claim_idle_ms", exc)
