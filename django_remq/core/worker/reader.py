"""StreamReader: one blocking XREADGROUP over a worker's queues, delivered in the same
round trip.

The blocking read and deliver.lua ("pending" mode, one call per queue read) go out in
one pipeline. Redis runs a connection's commands in order and holds the ones behind a
blocked read until it returns, so the scripts run the moment the read does, with
nothing in between on the wire: the worker gets jobs that are already ``processing``
for it, never bare entries it would have to start first and confirm later.

On a Redis Cluster one read cannot span hash slots (each queue has its own), so a
worker serving several queues blocks on each slot's streams at once, on pinned
connections, and ends the other reads with ``CLIENT UNBLOCK`` as soon as one returns.

Every deliver call goes to a client that does not decode (the blocking ones, and
``Connection.raw_aio`` for the others): its reply holds records and entries as anyone
wrote them, and a decoding client fails the whole reply on one byte that is not UTF-8
-- the batch then stalls until reclaimed, at every reclaim. :func:`undecoded` decodes
the reply here, value by value, and makes a bad value its own job's failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any, cast

from redis.crc import key_slot
from redis.exceptions import MovedError, NoScriptError, ResponseError

from ..store.calls import RUN_FIELDS, Delivery
from ..store.cluster_wait import arelearn
from ..store.connection import Connection
from ..store.keys import GROUP, Keys
from ..store.records import escaped
from ..store.scripts import Call, arun_many
from .lanes import LaneView
from .reconnect import REDIS_DOWN

log = logging.getLogger("django_remq.reader")

#: builds the deliver call for what a queue's read took, running at most the given
#: number of jobs (:func:`..store.calls.pending`)
DeliverCall = Callable[[str, int], Call[list[Delivery]]]


class LastGiven:
    """The newest entry id a consumer was given on each stream. A read with ">" takes only
    entries newer than any its group gave out, so what a blocking read took lies after
    it: deliver.lua's pending mode starts there instead of scanning every entry the
    consumer holds (each job it runs: two reads per pick-up). Should an entry ever fall
    below it (a failover that lost writes), it is reclaimed after ``claim_idle_ms``."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, int], tuple[int, int]] = {}

    def note(self, queue: str, deliveries: Iterable[Delivery]) -> None:
        ids = self._ids
        for d in deliveries:
            if not d.entry_id:
                continue
            ms, _, seq = d.entry_id.partition("-")
            try:
                key, value = (queue, d.lane), (int(ms), int(seq or 0))
            except ValueError:  # not a stream id: nothing to learn from it
                continue
            if value > ids.get(key, (-1, -1)):
                ids[key] = value

    def after(self, queue: str, lanes: Sequence[int]) -> list[str]:
        """Per lane, the id to read after ("-": from the start)."""
        out = []
        for lane in lanes:
            last = self._ids.get((queue, lane))
            out.append("-" if last is None else f"{last[0]}-{last[1]}")
        return out

    def forget(self) -> None:
        """Start over (the streams' groups were made again)."""
        self._ids.clear()


class StreamReader:
    """Reads new entries for a consumer of the ``remq`` group on each queue's stream.

    Paused queues are left out of the read itself (the caller passes only the
    queues to read); one paused meanwhile is caught by deliver.lua, atomically.
    """

    def __init__(self, conn: Connection, keys: Keys, consumer: str, block_ms: int = 1000,
                 lanes: LaneView | None = None) -> None:
        self.conn = conn
        self.keys = keys
        self.consumer = consumer
        self.block_ms = block_ms
        #: each queue's lanes, kept by the worker's housekeeping (default: none but 0)
        self.lanes = lanes if lanes is not None else LaneView()
        self._streams: dict[str, str] = {}
        #: where each stream's new entries for this consumer start (pending mode)
        self.given = LastGiven()
        #: queues whose entries a read took beyond the free slots (the consumer delivers
        #: them as slots free up: deliver.lua's "held")
        self.held: set[str] = set()

    def _streams_of(self, queue: str) -> list[str]:
        """The streams to read of ``queue``: its priority lanes, highest first."""
        return self.lanes.streams(self.keys, queue)

    def _stream(self, queue: str) -> str:
        stream = self._streams.get(queue)
        if stream is None:
            stream = self._streams[queue] = self.keys.queue(queue).stream
        return stream

    async def ensure_groups(self, queues: Sequence[str]) -> None:
        """Create the consumer group on each stream, from the start (id 0): entries
        emitted before any worker ever ran are delivered too."""
        self.given.forget()  # a group made again gives out its entries from the start
        client = self.conn.aio
        for stream in {s for queue in queues for s in (self._stream(queue),
                                                        *self._streams_of(queue))}:
            try:
                await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read(self, queues: Sequence[str], count: int,
                   deliver: DeliverCall) -> list[tuple[str, list[Delivery]]]:
        """Block until some queue has entries (or ``block_ms`` passes); return what
        deliver.lua made of them, per queue.

        One queue of one stream: its deliver call goes in the read's pipeline (one round
        trip from an emit to a running job). More streams: the read blocks on all of them
        alone, and deliver.lua runs afterwards for the queues it took entries from -- a
        deliver call per queue on every idle block would cost Redis one script per queue
        per second for nothing (docs/design.md, "What an idle worker costs")."""
        if not queues or count <= 0:
            return []
        if len(queues) > 1 or len(self._streams_of(queues[0])) > 1:
            return await self._read_then_deliver(queues, count, deliver)
        chosen, each = list(queues), count
        calls = [undecoded(deliver(q, each)) for q in chosen]
        commands = self._read_commands(chosen, calls, each, self.block_ms)
        replies = await self._send(commands)
        return await self._delivered(queues, chosen, calls, replies)

    async def _send(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """One pipelined round trip on a connection that may block ``block_ms``."""
        line = self.conn.blocking_line(self.block_ms)
        if line is not None:  # the read's own reply is not used: raw is as good as parsed
            return await line.execute(commands)
        pipe = self.conn.blocking(self.block_ms).pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))

    async def _read_then_deliver(self, queues: Sequence[str], count: int,
                                 deliver: DeliverCall) -> list[tuple[str, list[Delivery]]]:
        """Block on every stream of ``queues`` in one read (one per hash slot on a
        cluster), then deliver what it took: the queues with entries share ``count``;
        what does not fit stays pending for this consumer ("held": delivered as slots
        free up)."""
        if self.conn.cluster:
            slots: dict[int, list[str]] = {}
            for q in queues:  # a queue's lanes share its hash tag: its main stream's slot
                slots.setdefault(key_slot(self._stream(q).encode()), []).append(q)
            if len(slots) > 1:
                chosen = [q for group in slots.values() for q in group]
                at = {q: i for i, q in enumerate(chosen)}
                found = await self._read_per_slot(
                    queues, chosen, [], max(1, count // len(chosen)), self.block_ms,
                    [[at[q] for q in group] for group in slots.values()])
                return await self.deliver_found([q for q, _ in found], count, deliver)
        streams = [s for q in queues for s in self._streams_of(q)]
        per_stream = max(1, count // len(streams))
        read = ("XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", per_stream,
                "BLOCK", self.block_ms, "STREAMS", *streams, *(">" for _ in streams))
        replies = await self._send([read])
        got = await self._delivered(queues, [], [], replies)
        return await self.deliver_found([q for q, _ in got], count, deliver)

    async def deliver_found(self, found: Sequence[str], count: int,
                            deliver: DeliverCall) -> list[tuple[str, list[Delivery]]]:
        """deliver.lua for each queue a read took entries from (``found``), ``count``
        runs shared among them."""
        if not found:
            return []
        each = max(1, count // len(found))
        chosen = list(found[:count])
        self.held.update(found[count:])  # what they hold waits for free slots
        calls = [undecoded(deliver(q, each)) for q in chosen]
        again = await arun_many(self.conn.raw_aio, calls, self.conn.raw_line)
        return list(zip(chosen, again, strict=True))

    def _read_commands(self, chosen: Sequence[str], calls: Sequence[Call[Any]], each: int,
                       block: int) -> list[tuple[Any, ...]]:
        """The blocking read, then each queue's deliver call (EVALSHA, raw: redis-py's
        cluster pipelines refuse ``.evalsha()``)."""
        lanes = [self._streams_of(q) for q in chosen]
        streams = [s for of_q in lanes for s in of_q]
        # COUNT is per stream: a queue's lanes share its part (deliver.lua runs no more
        # than ``each`` of what they took and holds the rest for the next call)
        per_stream = max(1, each // max(len(of_q) for of_q in lanes))
        read = ("XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", per_stream,
                "BLOCK", block, "STREAMS", *streams, *(">" for _ in streams))
        return [read, *(("EVALSHA", *call.evalsha_args) for call in calls)]

    async def _delivered(self, queues: Sequence[str], chosen: Sequence[str],
                         calls: Sequence[Call[list[Delivery]]], replies: Sequence[Any]
                         ) -> list[tuple[str, list[Delivery]]]:
        """What deliver.lua made of one pipelined read (``replies``: the read's, then one
        per queue in ``chosen``)."""
        read, *delivered = replies
        if isinstance(read, ResponseError):
            if "NOGROUP" not in str(read):
                raise read
            log.warning("consumer group missing (stream deleted?); recreating it")
            await self.ensure_groups(queues)
            return []
        if not calls:  # a read alone: which queues it took entries from
            return [(q, []) for q in self._queues_read(read, queues)]
        if any(isinstance(reply, NoScriptError) for reply in delivered):
            # scripts flushed (a Redis restart): what the read took is still pending
            # for this consumer; deliver it again now that the scripts are loaded
            again = await arun_many(self.conn.raw_aio, calls, self.conn.raw_line)
            return list(zip(chosen, again, strict=True))
        for reply in delivered:
            if isinstance(reply, Exception):
                raise reply
        return [(q, call.parse(reply)) for q, call, reply in zip(chosen, calls, delivered,
                                                                    strict=True)]

    def _queues_read(self, reply: Any, queues: Sequence[str]) -> list[str]:
        """The queues among ``queues`` whose streams an XREADGROUP reply has entries of
        (RESP2: [[stream, entries], ...]; RESP3: {stream: entries})."""
        if not reply:
            return []
        pairs = reply.items() if isinstance(reply, dict) else reply
        names = {(s.decode() if isinstance(s, bytes) else str(s)) for s, entries in pairs
                 if entries}
        return [q for q in queues if any(s in names for s in self._streams_of(q))]

    async def _read_per_slot(self, queues: Sequence[str], chosen: Sequence[str],
                             calls: Sequence[Call[list[Delivery]]], each: int, block: int,
                             groups: Sequence[Sequence[int]]
                             ) -> list[tuple[str, list[Delivery]]]:
        """A cluster refuses one read across hash slots: read each slot's streams on its
        own connection, all blocking at once. The first to return (work, the block's end,
        or its node gone) ends the others by ``CLIENT UNBLOCK``: they answer as if timed
        out, keeping the connection and the deliver calls behind them, so nothing read is
        lost and a job waits for one round trip, not a block."""
        blocked: dict[int, tuple[str, int]] = {}  # group -> (node name, client id)
        tasks = [asyncio.create_task(self._read_slot(
            g, queues, [chosen[i] for i in group], [calls[i] for i in group if calls], each, block,
            blocked)) for g, group in enumerate(groups)]
        pending: set[asyncio.Task[Any]] = set(tasks)
        woken = False
        try:
            while pending:  # a read not blocked yet when asked is asked again
                done, pending = await asyncio.wait(
                    pending, timeout=0.05 if woken else None,
                    return_when=asyncio.FIRST_COMPLETED)
                # work, the block's end, or a node gone (its read is over: read again
                # soon, on the map relearned) ends the others' reads
                woken = woken or any(not isinstance(t.result(), Exception)
                                     or isinstance(t.result(), REDIS_DOWN) for t in done)
                if woken and pending:
                    await self._unblock(list(blocked.values()))
        except asyncio.CancelledError:  # stopping: as a cancelled single read would
            for task in tasks:
                task.cancel()
            raise
        results = [task.result() for task in tasks]
        errors = [r for r in results if isinstance(r, Exception)]
        if len(errors) == len(results):
            raise errors[0]
        for exc in errors:  # the others' deliveries are processing for us: run them
            log.warning("reading one slot's queues failed: %r", exc)
        return [found for r in results if not isinstance(r, Exception) for found in r]

    async def _read_slot(self, g: int, queues: Sequence[str], mine: Sequence[str],
                         calls: Sequence[Call[list[Delivery]]], each: int, block: int,
                         blocked: dict[int, tuple[str, int]]
                         ) -> list[tuple[str, list[Delivery]]] | Exception:
        """One slot group's pipelined read; an error is returned, not raised, so that one
        node's trouble does not end the other reads early."""
        try:
            client, node = await self.conn.pinned(self._stream(mine[0]), self.block_ms)
            blocked[g] = (node, await client.client_id())
            pipe = client.pipeline(transaction=False)
            for command in self._read_commands(mine, calls, each, block):
                pipe.execute_command(*command)
            try:
                replies = await pipe.execute(raise_on_error=False)
            finally:
                blocked.pop(g, None)
            if isinstance(replies[0], MovedError):  # the slot moved: learn the new map
                await arelearn(cast(Any, self.conn.blocking(self.block_ms)))
            return await self._delivered(queues, mine, calls, replies)
        except Exception as exc:
            if isinstance(exc, REDIS_DOWN):  # the node is gone (a failover?): the map too
                await arelearn(cast(Any, self.conn.blocking(self.block_ms)))
            return exc

    async def _unblock(self, blocked: Sequence[tuple[str, int]]) -> None:
        """Best effort: a read left blocked only ends at its block, as on one node."""
        client = cast(Any, self.conn.aio)
        nodes = [(client.get_node(node_name=name), client_id) for name, client_id in blocked]
        await asyncio.gather(*(
            client.execute_command("CLIENT", "UNBLOCK", client_id, target_nodes=node)
            for node, client_id in nodes if node is not None), return_exceptions=True)


def undecoded(call: Call[list[Delivery]]) -> Call[list[Delivery]]:
    """``call`` (a deliver.lua call) for a client that does not decode: its reply goes
    through :func:`delivered` before the call's own parser."""
    return Call(call.script, call.keys, call.args, _through_delivered(call.parse))


@lru_cache(maxsize=512)  # ops builds one parser per lane set
def _through_delivered(parse: Callable[[Any], list[Delivery]]
                       ) -> Callable[[Any], list[Delivery]]:
    return lambda reply: parse(delivered(reply))


_RECORDS = (b"run", b"poison", b"corrupt")  # verdicts whose values are RUN_FIELDS
_N = len(RUN_FIELDS)


def delivered(reply: list[Any]) -> list[Any]:
    """deliver.lua's reply, read undecoded, with the record values of each delivery decoded
    (in place). A value that is not UTF-8 makes its delivery "corrupt", naming the field,
    its value kept escaped: the job is processing, and the worker fails it as it fails any
    corrupt record (once, with its dead letter). Other values (ids, verdicts, a malformed
    entry's fields) are decoded by the call's parser (``records.pairs_to_dict``)."""
    for item in reply:
        if item[2] in _RECORDS:
            values = item[3]
            try:
                item[3] = [v.decode() for v in values]
            except UnicodeDecodeError:
                item[2], item[3] = b"corrupt", _corrupt(item[2], values)
    return reply


def _corrupt(verdict: bytes, values: list[bytes]) -> list[str]:
    """The values of a delivery with some that are not UTF-8: those left out, then the
    field at fault and its value escaped (deliver.lua's own "corrupt" keeps its field)."""
    text: list[str | None] = []
    for v in values:
        try:
            text.append(v.decode())
        except UnicodeDecodeError:
            text.append(None)
    run = [t if t is not None else "" for t in text[:_N]]
    if verdict == b"corrupt":  # status or deliveries: deliver.lua's reason comes first
        value = text[_N + 1]
        return [*run, text[_N] or "?", escaped(values[_N + 1]) if value is None else value]
    first = next(i for i, t in enumerate(text[:_N]) if t is None)
    return [*run, RUN_FIELDS[first], escaped(values[first])]
