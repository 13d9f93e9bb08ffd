"""Wake-ups: what an idle worker learns by listening instead of polling.

A worker blocks on its queues' streams for new work. Everything else it used to poll
for, queue by queue, is announced on one pub/sub channel (``keys.Keys.wake``):

- ``due <queue> <ms>``: a job was scheduled in ``queue`` to run at ``ms`` (Redis
  time): emit.lua for a delayed job, finish.lua for a retry with a delay;
- ``lane <queue> 0``: a job went to a priority lane that did not exist before
  (emit.lua): read the queue's lanes again;
- ``reclaim <queue> 0``: a stopping worker handed its unfinished entries back
  (housekeeping.release): take them over now, not after ``claim_idle_ms``.

The scripts publish in the same atomic step as the write they announce. A message is
lost only while a subscriber is not connected; so every (re)subscription counts as a
gap, and the worker then does what it would have missed: promotes every queue and
scans for stalled entries once (``on_gap``).

On a Redis Cluster, PUBLISH reaches every node's subscribers: the listener connects to
one primary, and to another when that one goes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any, cast

import redis.asyncio

from ..store.clients import node_client
from ..store.connection import Connection
from ..store.keys import Keys
from .reconnect import REDIS_DOWN, Backoff

log = logging.getLogger("django_remq.wakeups")

#: (kind, queue, number) of one message
OnMessage = Callable[[str, str, int], None]


def parse(data: Any) -> tuple[str, str, int] | None:
    """A message's (kind, queue, number), or ``None`` for one this worker does not know
    (a newer version's, or not ours)."""
    text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
    parts = text.split(" ")
    if len(parts) != 3 or not parts[2].lstrip("-").isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


class Wakeups:
    """Listens on the wake channel until stopped; calls ``on_message`` for each message
    and ``on_gap`` each time it (re)subscribes."""

    def __init__(self, conn: Connection, keys: Keys, on_message: OnMessage,
                 on_gap: Callable[[], None]) -> None:
        self.conn = conn
        self.channel = keys.wake
        self.on_message = on_message
        self.on_gap = on_gap
        #: set once subscribed (tests wait for it before publishing)
        self.subscribed = asyncio.Event()

    async def _client(self) -> tuple[redis.asyncio.Redis, bool]:
        """A client of its own to subscribe with (a subscription holds its connection: not
        one of the pool the worker's commands share), and whether it is ours to close."""
        if not self.conn.cluster:  # a pool has what node_client reads of a node
            return node_client(self.conn.aio.connection_pool), True
        cluster = cast(Any, self.conn.aio)
        await cluster.initialize()
        return node_client(random.choice(cluster.get_primaries())), True

    async def run(self, stopping: Callable[[], bool]) -> None:
        backoff = Backoff()
        while not stopping():
            try:
                await self._listen(stopping)
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as exc:
                log.debug("wake channel lost (%s); subscribing again", exc)
            except Exception:
                log.exception("wake channel: unexpected error; subscribing again")
            if self.subscribed.is_set():  # it was up: try again soon
                backoff.reset()
            self.subscribed.clear()
            await asyncio.sleep(backoff.next())

    async def _listen(self, stopping: Callable[[], bool]) -> None:
        client, own = await self._client()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self.subscribed.set()
            self.on_gap()  # anything published before now was missed
            while not stopping():
                # a timeout returns None without a command sent: idle costs Redis nothing
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if msg is None or msg.get("type") != "message":
                    continue
                parsed = parse(msg["data"])
                if parsed is not None:
                    self.on_message(*parsed)
        finally:
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            finally:
                if own:
                    await client.aclose()
