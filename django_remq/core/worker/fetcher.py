"""Fetcher: the ways a worker's read loop takes work besides its blocking read.

Each is one round trip of deliver.lua calls, and each returns at once when it has
nothing to do, so an idle worker sends none of them:

- :meth:`Fetcher.reclaim`: entries idle past ``claim_idle_ms``, in the queues
  :class:`.Reclaims` names, ahead of new work (under load they get the first slots);
- :meth:`Fetcher.deliver_held`: what a blocking read over several lanes took beyond the
  free slots (deliver.lua's "held");
- :meth:`Fetcher.fetch`: while busy, new entries from the queues known to have some
  (hot queues), a few queues a round trip, taking turns.

What it gets goes to the consumer's ``dispatch``, which starts or refuses each delivery
(and marks its queue hot again: :meth:`Fetcher.note_hot`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from ..store import calls
from ..store.calls import Delivery
from ..store.connection import Connection
from ..store.keys import Keys
from ..store.scripts import Call, arun, arun_many
from .consumer_options import ConsumerOptions
from .housekeeping import Housekeeping
from .pool import ConcurrencyPool
from .reader import StreamReader, undecoded

log = logging.getLogger("django_remq.consumer")

#: a fetch round trip serves one queue per this many free slots
FETCH_SHARE = 16
#: a hot queue's turn: this many times the concurrency in deliveries
TURN = 4

Dispatch = Callable[[str, list[Delivery]], None]


class Fetcher:
    def __init__(self, conn: Connection, keys: Keys, name: str, options: ConsumerOptions,
                 pool: ConcurrencyPool, reader: StreamReader, housekeeping: Housekeeping,
                 dispatch: Dispatch) -> None:
        self.conn = conn
        self.keys = keys
        self.name = name
        self.options = options
        self.pool = pool
        self.reader = reader
        self.housekeeping = housekeeping
        self.dispatch = dispatch
        #: queues that gave entries lately, in turn order: fetched from while busy (at
        #: start, every queue: a backlog is fetched in priority order, lanes first)
        self.hot: dict[str, None] = dict.fromkeys(options.queues)
        self._turn_left = TURN * options.concurrency  # deliveries left in this turn

    def note_hot(self, queue: str) -> None:
        """``queue`` gave entries: it may have more, fetch from it next."""
        self.hot[queue] = None

    def pending_call(self, queue: str, limit: int) -> Call[list[Delivery]]:
        """deliver.lua on what this consumer holds of ``queue`` (its blocking read's
        entries), at most ``limit`` to run."""
        lanes = self.housekeeping.lanes.of(queue)
        opts = self.options
        return calls.pending(self.keys.queue(queue), self.name, lock_ms=opts.claim_idle_ms,
                             max_deliveries=opts.max_deliveries, lanes=lanes, limit=limit,
                             after=self.reader.given.after(queue, lanes),
                             extra=opts.extra_fields)

    async def deliver_held(self, queue: str) -> bool:
        """Deliver what a blocking read over several lanes of ``queue`` took beyond the free
        slots (deliver.lua said "held"); ``True`` if it found work."""
        deliveries = await arun(self.conn.raw_aio,
                                undecoded(self.pending_call(queue, self.pool.free)),
                                self.conn.raw_line)
        self.dispatch(queue, deliveries)
        return bool(deliveries)

    async def reclaim(self, queues: Sequence[str]) -> bool:
        """Take over entries idle past claim_idle_ms, ahead of new work, in the queues
        housekeeping says may have some (:meth:`.Reclaims.take`): under load they get the
        first free slots. ``True`` if it filled every free slot."""
        reclaims = self.housekeeping.reclaims
        todo = reclaims.take(queues)
        opts = self.options
        for i, queue in enumerate(todo):
            free = self.pool.free  # only the read loop takes slots: it can only grow meanwhile
            call = calls.reclaim(self.keys.queue(queue), self.name, min_idle_ms=opts.claim_idle_ms,
                                 count=free, lock_ms=opts.claim_idle_ms,
                                 max_deliveries=opts.max_deliveries,
                                 lanes=self.housekeeping.lanes.of(queue), extra=opts.extra_fields)
            deliveries = await arun(self.conn.raw_aio, undecoded(call), self.conn.raw_line)
            if deliveries:
                log.info("reclaimed %d stalled entries in %r", len(deliveries), queue)
                self.dispatch(queue, deliveries)
            if len(deliveries) >= free:  # maybe more: go on at the next free slot
                reclaims.later(todo[i:])
                return True
        return False

    async def fetch(self) -> bool:
        """Read and deliver in one script per queue (no blocking), from the hot queues, a
        few at a time, each for as many jobs as there are free slots: with work spread
        over many queues a round trip still runs one or two scripts, not one per queue.
        ``True`` if it found work; ``False`` at once, with no round trip, when no queue is
        known to have any (the blocking read finds them)."""
        while self.hot:
            if await self._fetch_hot():
                return True
        return False

    async def _fetch_hot(self) -> bool:
        """One fetch round trip from the first hot queue(s); those that had nothing
        leave the hot ones."""
        free = self.pool.free
        paused = self.housekeeping.paused
        for q in [q for q in self.hot if q in paused]:  # paused meanwhile
            del self.hot[q]
        hot = list(self.hot)[:max(1, free // FETCH_SHARE)]
        if not hot:
            return False
        each = max(1, free // len(hot))
        # the hot queues take turns, each of ``TURN`` deliveries: jobs running together
        # then mostly share a queue, and so do their acknowledgements (one finish.lua
        # call per queue in a batch)
        self._turn_left -= each * len(hot)
        if self._turn_left <= 0:
            self._turn_left = TURN * self.options.concurrency
            for q in hot:  # to the back of the line
                del self.hot[q]
        lanes = self.housekeeping.lanes
        opts = self.options
        steps = [undecoded(calls.fetch(self.keys.queue(q), self.name, each,
                                       lock_ms=opts.claim_idle_ms,
                                       max_deliveries=opts.max_deliveries,
                                       lanes=lanes.of(q), aging_ms=lanes.aging(q),
                                       extra=opts.extra_fields))
                 for q in hot]
        replies = await arun_many(self.conn.raw_aio, steps, self.conn.raw_line)
        found = False
        for q, deliveries in zip(hot, replies, strict=True):
            found = found or bool(deliveries)
            self.dispatch(q, deliveries)
            if not deliveries:  # drained (for now): the blocking read finds more
                self.hot.pop(q, None)
        return found
