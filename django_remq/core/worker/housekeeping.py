"""A consumer's background duties besides reading.

- promote due delayed jobs to their streams (every ``promote_interval_ms``, or
  sooner when the next due job is nearer), and keep the view of paused queues;
- renew the entries of the jobs this worker runs so they are not reclaimed
  (heartbeat), and say when it is time to reclaim the entries of workers that
  stopped renewing theirs (the read loop does it: it alone takes pool slots, so
  reclaimed work goes first and never finds the pool full);
- publish this worker in the worker registry;
- on shutdown, hand unfinished entries back at once.

It gets what it works with, not the consumer: the connection and names, the
running jobs (a callable), and what to do on a cancel request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from .. import jsonutil
from ..loops import repeat
from ..store import calls
from ..store.connection import Connection
from ..store.keys import GROUP, Keys
from ..store.scripts import arun_many
from .lanes import LaneView

log = logging.getLogger("django_remq.upkeep")

DEAD_CONSUMER_IDLE_MS = 3_600_000  # consumers idle this long with nothing pending are removed

#: job id -> (queue, entry id, lane) of every job this worker runs right now
RunningView = Callable[[], Mapping[str, tuple[str, str, int]]]


@dataclass(frozen=True)
class WorkerSpec:
    """Who this worker is, as the registry and the scripts see it."""

    name: str
    queues: Sequence[str]
    concurrency: int
    claim_idle_ms: int
    promote_interval_ms: int = 100


class Housekeeping:
    def __init__(self, conn: Connection, keys: Keys, worker: WorkerSpec, *, running: RunningView,
                 cancel: Callable[[str], None], stopping: Callable[[], bool]) -> None:
        self.conn = conn
        self.keys = keys
        self.worker = worker
        self.running = running
        self.cancel = cancel
        self.stopping = stopping
        self.interval = max(worker.claim_idle_ms / 3000, 0.05)
        self.paused: set[str] = set()  # refreshed with every promote round
        self.lanes = LaneView()  # likewise
        #: set every tick (and at start); the read loop reclaims stalled entries before
        #: new work
        self.reclaim_due = True

    def start(self) -> list[asyncio.Task[None]]:
        loop = asyncio.get_running_loop()
        return [loop.create_task(self._promote_loop(), name="remq-promote"),
                loop.create_task(self._maintain_loop(), name="remq-maintain")]

    def unpaused(self) -> list[str]:
        """The queues to read, as of the last promote round (<= promote_interval_ms old);
        deliver.lua re-checks atomically, so a just-paused queue's entries are put back."""
        return [q for q in self.worker.queues if q not in self.paused]

    def note_paused(self, queue: str) -> None:
        """deliver.lua found ``queue`` paused: stop reading it before the next round says so."""
        self.paused.add(queue)

    async def promote(self) -> float:
        """Move due jobs to their streams, refresh the paused set; returns seconds to sleep."""
        wait = self.worker.promote_interval_ms / 1000
        queues = self.worker.queues
        steps = [calls.promote(self.keys.queue(q), self.lanes.of(q)) for q in queues]
        paused = set()
        for q, p in zip(queues, await arun_many(self.conn.aio, steps), strict=True):
            self.lanes.update(q, p.lanes)
            if p.next_due_in_ms is not None:
                wait = min(wait, p.next_due_in_ms / 1000)
            if p.paused:
                paused.add(q)
        self.paused = paused
        return wait

    async def _promote_loop(self) -> None:
        await repeat(self.promote, self.stopping, "promoting delayed jobs")

    async def _maintain_loop(self) -> None:
        rounds = 0

        async def step() -> float:
            nonlocal rounds
            await self.renew()
            self.reclaim_due = True
            await self.heartbeat()
            if rounds % 100 == 0:
                await self.forget_dead_consumers()
            rounds += 1
            return self.interval

        await repeat(step, self.stopping, "worker housekeeping", retry_in=self.interval)

    async def renew(self) -> None:
        """Renew exactly the entries of the jobs running here (nothing held but idle)."""
        by_queue: defaultdict[tuple[str, int], list[tuple[str, str]]] = defaultdict(list)
        for job_id, (queue, entry_id, lane) in list(self.running().items()):
            by_queue[queue, lane].append((job_id, entry_id))
        if not by_queue:
            return
        w = self.worker
        steps = [calls.renew(self.keys.queue(q), w.name, held, w.claim_idle_ms, lane)
                 for (q, lane), held in by_queue.items()]
        for ((queue, _), held), renewed in zip(by_queue.items(),
                                          await arun_many(self.conn.aio, steps), strict=True):
            for job_id in renewed.cancel:
                self.cancel(job_id)
            mine = set(renewed.owned)
            for job_id, entry_id in held:
                if entry_id not in mine and job_id in self.running():
                    log.warning("job %s in %r was taken over by another worker (this worker "
                                "stalled past claim_idle_ms=%d)", job_id, queue, w.claim_idle_ms)

    def streams(self) -> list[str]:
        """Every stream of this worker's queues: each queue's lanes."""
        return [self.keys.queue(q).lane(p) for q in self.worker.queues
                for p in self.lanes.of(q)]

    async def heartbeat(self) -> None:
        keys, w = self.keys, self.worker
        now = int(time.time() * 1000)
        info: dict[str, Any] = {"id": w.name, "host": socket.gethostname(), "pid": os.getpid(),
                                "queues": list(w.queues), "concurrency": w.concurrency,
                                "running": list(self.running()), "last_seen": now}
        ttl = int(self.interval * 3000) + 1000
        pipe = self.conn.aio.pipeline(transaction=False)
        pipe.set(keys.worker(w.name), jsonutil.dumps(info), px=ttl)
        pipe.zadd(keys.workers, {w.name: now})
        pipe.zremrangebyscore(keys.workers, "-inf", now - 10 * ttl)
        await pipe.execute()

    async def forget_dead_consumers(self) -> None:
        client = self.conn.aio
        for stream in self.streams():
            try:
                consumers = await client.xinfo_consumers(stream, GROUP)
            except ResponseError:  # a lane no worker has read yet: no group
                continue
            for info in consumers:
                if info["pending"] == 0 and info["idle"] > DEAD_CONSUMER_IDLE_MS:
                    await client.xgroup_delconsumer(stream, GROUP, info["name"])

    async def release(self) -> None:
        """Make this consumer's unfinished entries reclaimable now, and leave the registry."""
        client, w = self.conn.aio, self.worker
        try:
            for stream in self.streams():
                try:
                    pending = await client.xpending_range(stream, GROUP, "-", "+", 10_000,
                                                          consumername=w.name)
                except ResponseError:  # a lane no worker has read yet: no group
                    continue
                ids: list[Any] = [p["message_id"] for p in pending]
                if ids:
                    await client.xclaim(stream, GROUP, w.name, 0, ids,
                                        idle=w.claim_idle_ms, justid=True)
                    log.info("handed back %d unfinished entries in %r", len(ids), stream)
            await client.zrem(self.keys.workers, w.name)
            await client.delete(self.keys.worker(w.name))
        except Exception as exc:
            log.warning("could not hand back unfinished entries (%s); they will be reclaimed "
                        "after claim_idle_ms", exc)
