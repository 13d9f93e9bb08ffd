"""Reclaims: when a worker's read loop scans for stalled entries, and which queues.

A scan (deliver.lua's "claim" mode, in the consumer's read loop) costs a script per
queue, so it runs only when some entry may be there to take: at start, after a gap in
the wake channel or a hand-back, for the queues this worker got entries from lately
(its own entries held but never started), and while a worker that missed its heartbeat
has entries coming due. Housekeeping feeds it what it learns; the read loop asks
:meth:`Reclaims.take` before each read. No I/O here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("django_remq.upkeep")

RECLAIM_STEP_S = 0.5  # while a dead worker's entries come due, scan this often
#: how long past its last renewal plus a tick a dead worker's entries are looked for: a
#: starved worker renews late, and the two workers' estimates of Redis's clock differ
RECLAIM_SLACK_S = 5.0


class Reclaims:
    def __init__(self, claim_idle_ms: int, interval: float, wake: Callable[[], None]) -> None:
        self.claim_idle_ms = claim_idle_ms
        #: housekeeping's tick (renewals, heartbeats), seconds
        self.interval = interval
        #: wakes the promote loop, whose rounds turn due scan times into :attr:`due`
        self._wake = wake
        #: a scan of every queue is due (at start, a dead worker's entries coming due,
        #: entries handed back, a gap in the wake channel); the read loop reclaims before
        #: new work
        self.due = True
        self._at: list[float] = []  # monotonic times the read loop should reclaim
        self._dead: set[tuple[str, int]] = set()  # (worker, last heartbeat) handled
        self._active: dict[str, float] = {}  # queue -> when this worker last got entries
        self._some: list[str] = []  # queues to scan (due: all of them)

    def take(self, queues: Sequence[str]) -> list[str]:
        """The queues among ``queues`` the read loop should scan for stalled entries now
        (then none until told again)."""
        if self.due:
            self.due = False
            self._some = []
            return list(queues)
        if not self._some:
            return []
        some, self._some = set(self._some), []
        return [q for q in queues if q in some]

    def later(self, queues: Sequence[str]) -> None:
        """The scan stopped with every slot taken: the rest at the next free slot."""
        self._some = list(dict.fromkeys([*queues, *self._some]))

    def note_active(self, queue: str) -> None:
        """This worker got entries of ``queue``: scan it for stalled ones (its own, held
        but never started, included) each tick until ``claim_idle_ms`` after the last."""
        self._active[queue] = time.monotonic()

    def tick(self) -> None:
        """Each tick: scan the queues this worker got entries from within the last
        ``claim_idle_ms`` and a tick (an idle queue costs nothing)."""
        since = time.monotonic() - self.claim_idle_ms / 1000 - 2 * self.interval
        for q, at in list(self._active.items()):
            if at < since:
                del self._active[q]
        if self._active:
            self.later(list(self._active))

    def block_ms(self, default: int, burst: bool) -> int:
        """How long the read loop's next read may block: shorter while a dead worker's
        entries come due (the read loop takes them), or in a burst run."""
        if self._at or burst:
            return min(default, 250 if self._at else 50)
        return default

    def come_due(self, mono: float) -> None:
        """Scan times up to ``mono`` (monotonic) have come: a scan of every queue is due."""
        if self._at and self._at[0] <= mono:
            while self._at and self._at[0] <= mono:
                self._at.pop(0)
            self.due = True

    def next_in(self, mono: float) -> float | None:
        """Seconds from ``mono`` to the next scan time, ``None`` when none is set."""
        return max(0.0, self._at[0] - mono) if self._at else None

    def note_missed_heartbeats(self, stale: Sequence[tuple[str, int]], now: int) -> None:
        """Workers that missed a heartbeat (``stale``: name, last heartbeat; ``now``: Redis's
        clock, as heartbeats are stamped with it): their entries were last renewed no later
        than they died, at most one tick after that heartbeat, so they come due between
        ``last + claim_idle_ms`` and one tick later. The read loop reclaims at each step
        of that window (two ticks and ``RECLAIM_SLACK_S`` long, for a busy host; at once if
        seen late): a crashed worker's entries run again within about ``RECLAIM_STEP_S``
        of coming due; after the window, one scan a tick while the registry still holds
        the dead worker."""
        seen = set(stale)
        self._dead &= seen  # forget the ones gone from the registry
        mono = time.monotonic()
        for name, last in stale:
            if (name, last) in self._dead:
                # its window is over and it is still in the registry: a scan each tick
                # until the registry lets it go (its entries came due later than the
                # window said: a worker starved before it died renews late)
                if not self._at:
                    self._at.append(mono)
                continue
            self._dead.add((name, last))
            log.info("worker %s missed its heartbeat (last %.1f s ago); its entries are "
                     "reclaimed as they come due", name, (now - last) / 1000)
            start = mono + (last + self.claim_idle_ms - now) / 1000
            at = max(start, mono)  # seen late (a busy host): scan at once, at least once
            end = max(start + 2 * self.interval + RECLAIM_SLACK_S, at)
            while at <= end:
                self._at.append(at)
                at += RECLAIM_STEP_S
        self._at.sort()
        if self._at:
            self._wake()
