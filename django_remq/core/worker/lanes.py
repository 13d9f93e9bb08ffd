"""Priority lanes as a worker sees them: which of a queue's streams to read, in what order.

A queue's jobs of priority 0 are on its stream; each other priority has a lane stream
(``keys.QueueKeys.lane``), listed in the queue's lanes registry. Workers learn the
registry from every promote round (promote.lua returns it), so a new lane is read
within ``promote_interval_ms`` (plus one blocking read) of its first emit.

Order: highest priority first, so a batch takes the highest lanes' entries; within a
lane, stream order (FIFO). Starvation: every ``FAIR_EVERY``-th fetch of a queue also
passes the aging threshold (processor ``priority_aging_ms``): in that fetch, lanes
whose next entry has waited at least that long go first, oldest first. So while
higher lanes never run dry, a job at the head of a lower lane waits about
``priority_aging_ms`` plus ``FAIR_EVERY`` batches, not forever, and a backlog that
drains within the threshold runs in strict priority order.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..store.keys import Keys

#: every this many fetches of a queue, aged lanes go first (see the module doc)
FAIR_EVERY = 10
MAIN: tuple[int, ...] = (0,)


class LaneView:
    """The lanes of each queue (priorities, highest first, 0 included) and when a fetch
    checks for aged lanes."""

    def __init__(self, aging_ms: int = 30_000) -> None:
        self.aging_ms = aging_ms
        self._lanes: dict[str, tuple[int, ...]] = {}
        self._fetches: dict[str, int] = {}

    def update(self, queue: str, registry: Iterable[int]) -> None:
        self._lanes[queue] = tuple(sorted({0, *registry}, reverse=True))

    def of(self, queue: str) -> tuple[int, ...]:
        """Every lane of ``queue``, highest first."""
        return self._lanes.get(queue, MAIN)

    def streams(self, keys: Keys, queue: str) -> list[str]:
        """The streams to read of ``queue``: its lanes', highest first."""
        qk = keys.queue(queue)
        return [qk.lane(p) for p in self._lanes.get(queue, MAIN)]

    def aging(self, queue: str) -> int:
        """The aging threshold to pass to this fetch of ``queue`` (0: none this time)."""
        if len(self._lanes.get(queue, MAIN)) == 1:
            return 0
        n = self._fetches[queue] = self._fetches.get(queue, 0) + 1
        return 0 if n % FAIR_EVERY else self.aging_ms
