"""StreamReader: one blocking XREADGROUP over a worker's queues, delivered in the same
round trip.

The blocking read and deliver.lua ("pending" mode, one call per queue read) go out in
one pipeline. Redis runs a connection's commands in order and holds the ones behind a
blocked read until it returns, so the scripts run the moment the read does, with
nothing in between on the wire: the worker gets jobs that are already ``processing``
for it, never bare entries it would have to start first and confirm later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from ..store.connection import Connection
from ..store.keys import GROUP, Keys
from ..store.ops import Delivery
from ..store.scripts import Call, arun_many

log = logging.getLogger("django_remq.reader")

#: builds the deliver call for what a queue's read took, running at most the given
#: number of jobs (:func:`..store.ops.pending`)
DeliverCall = Callable[[str, int], Call[list[Delivery]]]


class StreamReader:
    """Reads new entries for a consumer of the ``remq`` group on each queue's stream.

    Paused queues are left out of the read itself (the caller passes only the
    queues to read); one paused meanwhile is caught by deliver.lua, atomically.
    """

    def __init__(self, conn: Connection, keys: Keys, consumer: str, block_ms: int = 1000) -> None:
        self.conn = conn
        self.keys = keys
        self.consumer = consumer
        self.block_ms = block_ms
        self._streams: dict[str, str] = {}
        self._turn = 0
        #: the streams to read of a queue (its priority lanes); default: its stream
        self.streams_of: Callable[[str], Sequence[str]] = lambda q: (self._stream(q),)

    def _stream(self, queue: str) -> str:
        stream = self._streams.get(queue)
        if stream is None:
            stream = self._streams[queue] = self.keys.queue(queue).stream
        return stream

    async def ensure_groups(self, queues: Sequence[str]) -> None:
        """Create the consumer group on each stream, from the start (id 0): entries
        emitted before any worker ever ran are delivered too."""
        client = self.conn.aio
        for stream in {s for queue in queues for s in (self._stream(queue),
                                                        *self.streams_of(queue))}:
            try:
                await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def share(self, queues: Sequence[str], count: int) -> tuple[list[str], int]:
        """Which queues to read this turn, and how many entries from each, so that all
        together never exceed ``count`` (COUNT applies per stream). With more queues
        than free slots the queues take turns."""
        picked = min(len(queues), count)
        start = self._turn % len(queues)
        self._turn += 1
        return [queues[(start + i) % len(queues)] for i in range(picked)], count // picked

    async def read(self, queues: Sequence[str], count: int,
                   deliver: DeliverCall) -> list[tuple[str, list[Delivery]]]:
        """Block until some queue has entries (or ``block_ms`` passes); return what
        deliver.lua made of them, per queue."""
        if not queues or count <= 0:
            return []
        chosen, each = self.share(queues, count)
        lanes = [self.streams_of(q) for q in chosen]
        streams: dict[Any, Any] = {s: ">" for of_q in lanes for s in of_q}
        # COUNT is per stream: a queue's lanes share its part (deliver.lua runs no more
        # than ``each`` of what they took and holds the rest for the next call)
        per_stream = max(1, each // max(len(of_q) for of_q in lanes))
        # while some queues sit out this turn, don't keep them waiting a whole block
        block = self.block_ms if len(chosen) == len(queues) else min(self.block_ms, 100)
        calls = [deliver(q, each) for q in chosen]
        pipe = self.conn.blocking(self.block_ms).pipeline(transaction=False)
        pipe.xreadgroup(GROUP, self.consumer, streams, count=per_stream, block=block)
        for call in calls:
            pipe.evalsha(*call.evalsha_args)
        read, *replies = await pipe.execute(raise_on_error=False)
        if isinstance(read, ResponseError):
            if "NOGROUP" not in str(read):
                raise read
            log.warning("consumer group missing (stream deleted?); recreating it")
            await self.ensure_groups(queues)
            return []
        if any(isinstance(reply, NoScriptError) for reply in replies):
            # scripts flushed (a Redis restart): what the read took is still pending
            # for this consumer; deliver it again now that the scripts are loaded
            replies = await arun_many(self.conn.aio, calls)
            return list(zip(chosen, replies, strict=True))
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [(q, call.parse(reply)) for q, call, reply in zip(chosen, calls, replies,
                                                                    strict=True)]
