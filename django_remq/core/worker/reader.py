"""StreamReader: one blocking XREADGROUP over every queue a worker serves."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from ..store.connection import Connection
from ..store.keys import GROUP, Keys

log = logging.getLogger("django_remq.reader")


@dataclass(frozen=True)
class Entry:
    queue: str
    entry_id: str
    job_id: str  # "" when the entry carries no job id (malformed)
    fields: dict[str, str]  # what the entry carries to start the job (ENTRY_FIELDS)


class StreamReader:
    """Reads new entries for a consumer of the ``remq`` group on each queue's stream.

    Paused queues are left out of the read itself (the caller passes only the
    queues to read), so a paused queue's entries are never taken and put back.
    """

    def __init__(self, conn: Connection, keys: Keys, consumer: str, block_ms: int = 1000) -> None:
        self.conn = conn
        self.keys = keys
        self.consumer = consumer
        self.block_ms = block_ms
        self._streams: dict[str, str] = {}
        self._turn = 0

    def _stream(self, queue: str) -> str:
        stream = self._streams.get(queue)
        if stream is None:
            stream = self._streams[queue] = self.keys.queue(queue).stream
        return stream

    async def ensure_groups(self, queues: Sequence[str]) -> None:
        """Create the consumer group on each stream, from the start (id 0): entries
        emitted before any worker ever ran are delivered too."""
        client = self.conn.aio
        for queue in queues:
            try:
                await client.xgroup_create(self._stream(queue), GROUP, id="0", mkstream=True)
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

    async def read(self, queues: Sequence[str], count: int) -> list[Entry]:
        if not queues or count <= 0:
            return []
        chosen, each = self.share(queues, count)
        streams: dict[Any, Any] = {self._stream(q): ">" for q in chosen}
        # while some queues sit out this turn, don't keep them waiting a whole block
        block = self.block_ms if len(chosen) == len(queues) else min(self.block_ms, 100)
        try:
            reply = await self.conn.blocking(self.block_ms).xreadgroup(
                GROUP, self.consumer, streams, count=each, block=block
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("consumer group missing (stream deleted?); recreating it")
            await self.ensure_groups(queues)
            return []
        return self._entries(reply, queues)

    def _entries(self, reply: object, queues: Sequence[str]) -> list[Entry]:
        if not reply:
            return []
        by_stream = {self._stream(q): q for q in queues}
        items: Any = reply.items() if isinstance(reply, dict) else reply  # RESP3 / RESP2
        out: list[Entry] = []
        for stream, messages in items:
            queue = by_stream[stream if isinstance(stream, str) else stream.decode()]
            for entry_id, fields in messages:
                text = {_text(k): _text(v) for k, v in (fields or {}).items()}
                out.append(Entry(queue, _text(entry_id), text.get("id", ""), text))
        return out


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
