"""Worker side of the gateway: live task events into the Channels layer.

:class:`ChannelLayerSink` is the engine's ``EventSink`` (``TaskManager.expose``),
plugged in by the Django layer when a channel layer is configured. Rules:

- Nobody listening costs nothing: an event is dropped at once unless its task is
  watched (the job's ``watch`` flag, which the sink asks the worker to carry with each
  job to run, its ``extra_fields``; or the gateway's watched registry) or a broadcast
  connection is open. Both registries are Redis sorted sets the sink re-reads once a
  second (:data:`REFRESH_S`), never per task.
- The handler never waits: events queue in memory and one sender sends them in
  order, in batches (one Channels message per group carries up to :data:`BATCH`
  events). While a send is on the wire, newer ``task_update`` s of a task replace its
  queued one (coalesced to the latest); ``task_retry`` / ``task_finished`` are never
  coalesced. So a burst of updates costs a few messages, and a group's channels stay
  far below channels-redis's ``capacity`` (it drops what is over it, silently).
- A slow or absent layer is logged (at most once per :data:`WARN_EVERY_S`), and the
  queue is bounded (:data:`MAX_PENDING`); the job record keeps the latest progress
  either way, and connections re-read final states (see the consumer).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import deque
from typing import Any

from django.conf import settings

from ..core import TaskManager
from .keys import WATCH, GatewayKeys

log = logging.getLogger("django_remq.gateway")

REFRESH_S = 1.0
SEND_TIMEOUT_S = 2.0
MAX_PENDING = 10_000
WARN_EVERY_S = 30.0
MAX_WATCHED = 100_000
BATCH = 100  # events per Channels message at most
_GROUP_SAFE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _group(name: str) -> str:
    """A valid Channels group name (ASCII letters, digits, '-_.', under 100 chars)."""
    if len(name) < 90 and _GROUP_SAFE.match(name):
        return name
    return "remq.h." + hashlib.sha1(name.encode()).hexdigest()


def task_group(prefix: str, task_id: str) -> str:
    return _group(f"remq.{prefix}.task.{task_id}")


def broadcast_group(prefix: str) -> str:
    return _group(f"remq.{prefix}.broadcast")


class RateLimitedLog:
    """One warning per ``every`` seconds, with the count of the ones held back."""

    def __init__(self, every: float = WARN_EVERY_S) -> None:
        self.every, self.last, self.held = every, 0.0, 0

    def warning(self, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            self.held += 1
            return
        suffix = f" ({self.held} similar messages held back)" if self.held else ""
        self.last, self.held = now, 0
        log.warning(msg + suffix, *args)


def _flagged(event: dict[str, Any]) -> bool:
    """The job's record has the ``watch`` flag (carried as the event's ``extra``)."""
    extra = event.get("extra")
    return bool(extra and extra.get(WATCH))


class ChannelLayerSink:
    """Sends a worker's live task events to the gateway's Channels groups."""

    #: the record fields the worker hands back with each job, in its events' ``extra``
    extra_fields = (WATCH,)

    def __init__(self, layer: Any, tm: TaskManager) -> None:
        self.layer, self.tm, self.keys = layer, tm, GatewayKeys(tm.keys.prefix)
        self.broadcast = False  # some broadcast connection is open
        self.watched: frozenset[str] = frozenset()  # task ids in the watched registry
        self.loaded = False  # the registries were read once
        self.sent = self.coalesced = self.dropped = 0
        self._pending: deque[dict[str, Any]] = deque()
        self._latest: dict[str, dict[str, Any]] = {}  # task id -> its queued task_update
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._down_until = 0.0
        self._sending = False
        self._warn = RateLimitedLog()

    def __repr__(self) -> str:
        return f"<ChannelLayerSink {type(self.layer).__name__} prefix={self.keys.prefix!r}>"

    def wanted(self, event: dict[str, Any]) -> bool:
        return self.broadcast or event["taskId"] in self.watched or _flagged(event)

    def __call__(self, event: dict[str, Any]) -> None:
        """The engine calls this on the worker's loop; it never blocks."""
        if self.loaded and not self.wanted(event):
            return
        if self._loop is not asyncio.get_running_loop():
            self._start()
        task_id = event["taskId"]
        if event["type"] == "task_update":
            queued = self._latest.get(task_id)
            if queued is not None:
                queued.update(event)  # still unsent: its place in the order holds
                self.coalesced += 1
                return
            self._latest[task_id] = event
        else:
            self._latest.pop(task_id, None)
        if len(self._pending) >= MAX_PENDING:
            self._forget(self._pending.popleft())
            self.dropped += 1
            self._warn.warning("gateway: %d live events queued (the channel layer is not "
                               "keeping up); dropping the oldest", MAX_PENDING)
        self._pending.append(event)
        assert self._wake is not None
        self._wake.set()

    def _forget(self, event: dict[str, Any]) -> None:
        if self._latest.get(event["taskId"]) is event:
            del self._latest[event["taskId"]]

    def _start(self) -> None:
        """Start the registry reader and the sender on this loop (the first event's)."""
        loop = self._loop = asyncio.get_running_loop()
        self._pending.clear()
        self._latest.clear()
        self._wake = asyncio.Event()
        self._tasks = [loop.create_task(self._refresh_loop(), name="remq-gateway-registry"),
                       loop.create_task(self._send_loop(), name="remq-gateway-send")]

    async def refresh(self) -> None:
        """Re-read who listens: open broadcast connections, watched tasks."""
        now = int(time.time() * 1000)
        pipe = self.tm.conn.aio.pipeline(transaction=False)
        pipe.zcount(self.keys.broadcast, now, "+inf")
        pipe.zrangebyscore(self.keys.watched, now, "+inf", start=0, num=MAX_WATCHED)
        broadcast, watched = await pipe.execute()
        self.broadcast = broadcast > 0
        self.watched = frozenset(w.decode() if isinstance(w, bytes) else w for w in watched)
        self.loaded = True

    async def _refresh_loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._warn.warning("gateway: cannot read the listener registry (%s)", exc)
                self.loaded = True  # decide with what we knew rather than queue forever
            await asyncio.sleep(REFRESH_S)

    async def _send_loop(self) -> None:
        assert self._wake is not None
        while not self.loaded:
            await asyncio.sleep(0.01)
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch: list[dict[str, Any]] = []
            while self._pending and len(batch) < BATCH:
                event = self._pending.popleft()
                self._forget(event)
                batch.append(event)
            self._sending = True
            try:
                await self._send(batch)
            finally:
                self._sending = False

    async def _send(self, batch: list[dict[str, Any]]) -> None:
        """One ``group_send`` per group for the whole batch (in order), not one per event:
        a Channels message costs a few Redis round trips, an event in it nothing."""
        if time.monotonic() < self._down_until:
            self.dropped += len(batch)
            return
        prefix = self.keys.prefix
        by_task: dict[str, list[dict[str, Any]]] = {}
        for event in batch:  # "extra" is the engine's, not the wire's: it goes here
            flagged = _flagged(event)
            event.pop("extra", None)
            if flagged or event["taskId"] in self.watched:
                by_task.setdefault(event["taskId"], []).append(event)
        sends = [(task_group(prefix, task_id), "task", events)
                 for task_id, events in by_task.items()]
        if self.broadcast:
            sends.append((broadcast_group(prefix), "broadcast", batch))
        for group, via, events in sends:
            try:
                await asyncio.wait_for(self.layer.group_send(
                    group, {"type": "remq.events", "via": via, "events": events}),
                    SEND_TIMEOUT_S)
                self.sent += len(events)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.dropped += len(events)
                self._down_until = time.monotonic() + REFRESH_S
                self._warn.warning("gateway: live events not sent (%s: %s); tasks go on, "
                                   "their progress is on the job record",
                                   type(exc).__name__, exc)
                return

    async def aclose(self) -> None:
        """Send what is queued (bounded by the send timeout), then stop."""
        if self._loop is not asyncio.get_running_loop():  # started on another loop, or never
            self._tasks, self._loop = [], None
            return
        deadline = time.monotonic() + SEND_TIMEOUT_S
        while (self._pending or self._sending) and self._tasks and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        self._tasks, self._loop = [], None


def sink_for(tm: TaskManager) -> ChannelLayerSink | None:
    """The sink for ``tm`` when the project has a default channel layer, else None."""
    if "default" not in (getattr(settings, "CHANNEL_LAYERS", None) or {}):
        return None
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    return None if layer is None else ChannelLayerSink(layer, tm)
