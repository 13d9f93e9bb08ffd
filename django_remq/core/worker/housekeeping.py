"""A consumer's background duties besides reading, at a cost to Redis that does not grow
with the number of queues while nothing happens (docs/design.md, "What an idle worker
costs").

- promote due delayed jobs to their streams: each queue's next due time is known from
  its last promote round, and a job scheduled earlier is announced on the wake channel
  (:mod:`.wakeups`), so a round runs for the queues that are due, when they are due --
  never a poll of every queue;
- keep the view of paused queues (one EXISTS over the paused ones, every
  ``promote_interval_ms``: a paused queue is found by deliver.lua, atomically);
- renew the entries of the jobs this worker runs so they are not reclaimed
  (heartbeat), and say when it is time to reclaim stalled entries (:mod:`.reclaims`): a
  worker that stopped heartbeating (its entries, from ``claim_idle_ms`` after its last
  heartbeat), a worker that handed its entries back, a gap in the wake channel; the
  read loop does it (it alone takes pool slots, so reclaimed work goes first and never
  finds the pool full);
- publish this worker in the worker registry;
- once an hour, for the whole fleet (one worker, by a lease), a backstop: every queue
  promoted and scanned for stalled entries, dead consumers removed;
- on shutdown, hand unfinished entries back at once.

It gets what it works with, not the consumer: the connection and names, the
running jobs (a callable), and what to do on a cancel request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from .reclaims import Reclaims
from .wakeups import Wakeups

log = logging.getLogger("django_remq.upkeep")

DEAD_CONSUMER_IDLE_MS = 3_600_000  # consumers idle this long with nothing pending are removed
#: the fleet's backstop sweep: one worker (the lease's holder) per this many seconds
SWEEP_EVERY_S = 3600
LEASE_CHECK_S = 60.0  # how often a worker asks for the sweep's lease
LONGEST_SLEEP_S = 60.0  # the promote loop's sleep with nothing due (costs Redis nothing)

#: job id -> (queue, entry id, lane) of every job this worker runs right now
RunningView = Callable[[], Mapping[str, tuple[str, str, int]]]


@dataclass(frozen=True)
class WorkerSpec:
    """Who this worker is, as the registry and the scripts see it."""

    name: str
    queues: Sequence[str]
    concurrency: int
    claim_idle_ms: int
    #: how often queues known paused are checked for a resume
    promote_interval_ms: int = 500


class Housekeeping:
    def __init__(self, conn: Connection, keys: Keys, worker: WorkerSpec, *, running: RunningView,
                 cancel: Callable[[str], None], stopping: Callable[[], bool],
                 lanes: LaneView | None = None,
                 report: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.conn = conn
        self.keys = keys
        self.worker = worker
        self.running = running
        self.started_ms = int(time.time() * 1000)  # the heartbeat says since when (uptime)
        #: more heartbeat fields (the Processor's counts of tasks run and failed)
        self.report = report
        self.cancel = cancel
        self.stopping = stopping
        self.interval = max(worker.claim_idle_ms / 3000, 0.05)
        self._wake = asyncio.Event()  # something for the promote loop to look at
        self.paused: set[str] = set()  # from promote rounds and resume checks
        self.lanes = lanes if lanes is not None else LaneView()  # likewise (kept here)
        #: when the read loop scans for stalled entries, and which queues
        self.reclaims = Reclaims(worker.claim_idle_ms, self.interval, self._wake.set)
        self._serves = frozenset(worker.queues)
        self._due: dict[str, int] = {}  # queue -> its next delayed job's time (Redis ms)
        #: queues a "due" message named while a promote round was on the wire: the round's
        #: replies may predate it, and must not erase it
        self._heard: set[str] = set()
        self._flagged: set[str] = set()  # queues to promote at the next round
        self._sweep = False  # promote every queue at the next round
        self._offset_ms = 0.0  # Redis's clock minus ours (from promote replies)
        self._paused_check = 0.0  # monotonic time of the next resume check
        self.wakeups = Wakeups(conn, keys, self._on_message, self._on_gap)

    def start(self) -> list[asyncio.Task[None]]:
        loop = asyncio.get_running_loop()
        return [loop.create_task(self._promote_loop(), name="remq-promote"),
                loop.create_task(self._maintain_loop(), name="remq-maintain"),
                loop.create_task(self.wakeups.run(self.stopping), name="remq-wakeups")]

    def unpaused(self) -> Sequence[str]:
        """The queues to read, as of the last look; deliver.lua re-checks atomically, so a
        just-paused queue's entries are put back. (Asked before every read: with none
        paused, the worker's own list, not a copy of hundreds of queues.)"""
        if not self.paused:
            return self.worker.queues
        return [q for q in self.worker.queues if q not in self.paused]

    def note_paused(self, queue: str) -> None:
        """deliver.lua found ``queue`` paused: stop reading it before the next round says so
        (and look for its resume from now on)."""
        self.paused.add(queue)
        self._wake.set()

    # -- promoting due jobs -------------------------------------------------------

    def redis_now(self) -> int:
        return int(time.time() * 1000 + self._offset_ms)

    def _on_message(self, kind: str, queue: str, number: int) -> None:
        if queue not in self._serves:
            return
        if kind == "due":
            self._heard.add(queue)
            if number < self._due.get(queue, number + 1):
                self._due[queue] = number
                self._wake.set()
        elif kind == "lane":
            self._flagged.add(queue)
            self._wake.set()
        elif kind == "reclaim":
            self.reclaims.due = True

    def _on_gap(self) -> None:
        """Subscribed (again): do once what the messages missed meanwhile would have said."""
        self._sweep = True
        self.reclaims.due = True
        self._wake.set()

    async def promote(self, queues: Iterable[str] | None = None) -> float:
        """Move due jobs of ``queues`` (default: every queue served) to their streams and
        note each one's next due time, lanes and paused flag; returns seconds until the
        next queue is due (at most ``LONGEST_SLEEP_S``)."""
        queues = list(self.worker.queues if queues is None else queues)
        self._heard.difference_update(queues)  # what was heard before, the round reads
        steps = [calls.promote(self.keys.queue(q), self.lanes.of(q)) for q in queues]
        for q, p in zip(queues, await arun_many(self.conn.aio, steps), strict=True):
            self._offset_ms = p.now_ms - time.time() * 1000
            self.lanes.update(q, p.lanes)
            heard = self._due.get(q) if q in self._heard else None  # meanwhile: keep it
            if p.next_due_in_ms is None:
                if heard is None:
                    self._due.pop(q, None)
            else:
                due = p.now_ms + p.next_due_in_ms
                self._due[q] = due if heard is None else min(due, heard)
            if p.paused:
                self.paused.add(q)
            else:
                self.paused.discard(q)
        return self._next_due_s()

    def _next_due_s(self) -> float:
        if not self._due:
            return LONGEST_SLEEP_S
        return min(LONGEST_SLEEP_S, max(0.0, (min(self._due.values()) - self.redis_now()) / 1000))

    async def _resumed(self) -> set[str]:
        """The queues known paused whose flag is gone (one EXISTS when none is)."""
        paused = sorted(self.paused)
        flags = [self.keys.queue(q).paused for q in paused]
        if await self.conn.aio.exists(*flags) == len(flags):
            return set()
        return set(paused)  # a promote round of each sorts them out

    async def _round(self) -> float:
        """One round: promote what is due (or flagged, or everything after a gap), check
        paused queues for a resume; returns seconds to sleep unless woken."""
        mono = time.monotonic()
        self.reclaims.come_due(mono)
        todo: set[str] = set()
        if self._sweep:
            self._sweep = False
            todo.update(self.worker.queues)
        now = self.redis_now()
        todo.update(q for q, at in self._due.items() if at <= now)
        todo.update(self._flagged)
        self._flagged.clear()
        check = self.worker.promote_interval_ms / 1000
        if self.paused and mono >= self._paused_check:
            self._paused_check = mono + check
            todo.update(await self._resumed())
        wait = await self.promote([q for q in self.worker.queues if q in todo]) if todo \
            else self._next_due_s()
        if self.paused:
            wait = min(wait, check)
        scan = self.reclaims.next_in(time.monotonic())
        return wait if scan is None else min(wait, scan)

    async def _promote_loop(self) -> None:
        while not self.stopping():
            self._wake.clear()
            try:
                wait = await self._round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("promoting delayed jobs failed (%s); retrying in 1.0s", exc)
                self._sweep = True  # what that round was to do is not known to be done
                wait = 1.0
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    # -- renewing, the registry, stalled entries -----------------------------------

    async def _maintain_loop(self) -> None:
        next_lease = 0.0

        async def step() -> float:
            nonlocal next_lease
            await self.renew()
            self.reclaims.tick()
            await self.heartbeat()
            if time.monotonic() >= next_lease:
                next_lease = time.monotonic() + LEASE_CHECK_S
                await self.backstop()
            return self.interval

        await repeat(step, self.stopping, "worker housekeeping", retry_in=self.interval)

    async def backstop(self) -> bool:
        """Once per ``SWEEP_EVERY_S`` for the whole fleet (the lease's holder): promote
        every queue, scan them for stalled entries, remove dead consumers -- whatever a
        lost message or a half-done hand-back left. ``True`` if this worker did it."""
        w = self.worker
        if not await self.conn.aio.set(self.keys.sweep_lease, w.name, nx=True,
                                       px=SWEEP_EVERY_S * 1000):
            return False
        self._sweep = True
        self.reclaims.due = True
        self._wake.set()
        await self.forget_dead_consumers()
        return True

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
        """Refresh this worker's registry entry; in the same round trip, find workers that
        missed a heartbeat (:meth:`.Reclaims.note_missed_heartbeats`)."""
        keys, w = self.keys, self.worker
        now = self.redis_now()  # one clock for the fleet: a missed heartbeat is judged by it
        info: dict[str, Any] = {"id": w.name, "host": socket.gethostname(), "pid": os.getpid(),
                                "queues": list(w.queues), "concurrency": w.concurrency,
                                "running": list(self.running()), "last_seen": now,
                                "started": self.started_ms, "rss": rss_bytes(),
                                **(self.report() if self.report is not None else {})}
        ttl = int(self.interval * 3000) + 1000
        pipe = self.conn.aio.pipeline(transaction=False)
        pipe.set(keys.worker(w.name), jsonutil.dumps(info), px=ttl)
        pipe.zadd(keys.workers, {w.name: now})
        pipe.zremrangebyscore(keys.workers, "-inf", now - 10 * ttl)
        pipe.zrangebyscore(keys.workers, "-inf", now - int(self.interval * 1000) - 500,
                           withscores=True)
        *_, stale = await pipe.execute()
        self.reclaims.note_missed_heartbeats([
            (n.decode() if isinstance(n, bytes) else str(n), int(score))
            for n, score in stale if n != w.name], now)

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
        handed: set[str] = set()
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
                    handed.add(stream.split("{", 1)[1].split("}", 1)[0])
            for queue in sorted(handed):  # the others take them now (worker/wakeups.py)
                await client.publish(self.keys.wake, f"reclaim {queue} 0")
            await client.zrem(self.keys.workers, w.name)
            await client.delete(self.keys.worker(w.name))
        except Exception as exc:
            log.warning("could not hand back unfinished entries (%s); they will be reclaimed "
                        "after claim_idle_ms", exc)


def rss_bytes() -> int | None:
    """This process's resident memory now (Linux: /proc/self/statm, one small read per
    heartbeat); ``None`` where that file does not exist."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
