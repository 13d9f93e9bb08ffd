"""Cron repeat: a handler registered with ``repeat`` runs once per tick, cluster-wide.

``repeat={"pattern": "*/30 * * * * *"}`` -- six fields with *seconds first* (the
original remq's form) -- or a standard five-field pattern; ``{"every_ms": 5000}`` for a
fixed interval (aligned on the epoch); ``"limit": n`` stops after n runs.

How it holds across workers: each queue has a schedule (``{queue}:cron``, a ZSET
event -> next tick). Every worker serving the queue wakes at the next tick and
calls cron.lua, which enqueues a job only if the tick is due and moves it on
atomically; the other workers find it no longer due. So 3 workers on a 1-second
schedule make 1 run per second, not 3. The next tick is always the first one
after *now*: after an hour of downtime there is one run for the missed ticks,
then the schedule goes on (no stampede, no catch-up).

Each run is a normal job (data ``None``; retries, timeouts, DLQ as for any job)
whose record shows its tick (``delay_until``), the next run (``next_run``),
``repeat_count`` (runs so far) and ``repeat_delay_ms`` (time to the next tick).
Ticks are computed in the processor's ``timezone`` (UTC in the bare engine; the
Django layer passes ``TIME_ZONE``). A pattern that is changed takes effect after
the tick already scheduled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from .. import jsonutil
from ..errors import InvalidOptions
from ..loops import repeat, wait_cancelled
from ..options import new_job_id
from ..store import scripts
from ..store.connection import Connection
from ..store.keys import Keys
from ..store.scripts import Arg, Call, arun

log = logging.getLogger("django_remq.cron")

REPEAT_KEYS = frozenset({"pattern", "every_ms", "limit"})
CANDIDATES = 8        # upcoming ticks sent per claim (absorbs clock skew between hosts)
SKEW_MS = 2_000       # candidates start this far before the local clock
MAX_SLEEP_S = 5.0     # re-check at least this often (schedule changed elsewhere)
EXAMPLES = ("E.g. repeat={'pattern': '* * * * *'} (every minute), {'pattern': "
            "'*/30 * * * * *'} (every 30 seconds: seconds first) or {'every_ms': 60000}.")


def timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidOptions(f"processor 'timezone': unknown time zone {name!r} ({exc})") from None


@dataclass(frozen=True)
class CronSpec:
    """A validated ``repeat`` option."""

    pattern: str | None = None
    every_ms: int | None = None
    limit: int = 0

    @classmethod
    def parse(cls, event: str, value: Any, where: str | None = None) -> CronSpec | None:
        """``where`` names the declaration in errors (default: ``register_handler(event)``)."""
        if value is None:
            return None
        where = f"{where or f'register_handler({event!r})'}: 'repeat'"
        if not isinstance(value, Mapping) or set(value) - REPEAT_KEYS:
            raise InvalidOptions(f"{where} must be a dict with 'pattern' (cron) or 'every_ms', "
                                 f"and optionally 'limit'; got {value!r}")
        pattern, every, limit = value.get("pattern"), value.get("every_ms"), value.get("limit", 0)
        if (pattern is None) == (every is None):
            raise InvalidOptions(f"{where}: give exactly one of 'pattern' and 'every_ms'")
        for key, num in (("every_ms", every), ("limit", limit)):
            if num is not None and (not isinstance(num, int) or isinstance(num, bool) or num < 0
                                    or (key == "every_ms" and num < 1)):
                raise InvalidOptions(f"{where}: {key!r} must be a positive int, got {num!r}")
        if pattern is not None:
            check_pattern(where, pattern)
        return cls(pattern, every, limit)

    def ticks_after(self, after_ms: int, tz: ZoneInfo, count: int = CANDIDATES) -> list[int]:
        """The next ``count`` ticks strictly after ``after_ms`` (epoch ms, ascending)."""
        if self.every_ms is not None:
            first = (after_ms // self.every_ms + 1) * self.every_ms
            return [first + i * self.every_ms for i in range(count)]
        assert self.pattern is not None
        start = datetime.fromtimestamp(after_ms / 1000, tz)
        it = croniter(self.pattern, start, second_at_beginning=seconds_first(self.pattern))
        out: list[int] = []
        while len(out) < count:
            tick = int(it.get_next(datetime).timestamp() * 1000)
            if tick > after_ms:
                out.append(tick)
        return out


def seconds_first(pattern: str) -> bool:
    return len(pattern.split()) == 6


def check_pattern(where: str, pattern: Any) -> None:
    """Reject a pattern with the reason (croniter would read 6 fields seconds-last)."""
    if not isinstance(pattern, str):
        raise InvalidOptions(f"{where}: 'pattern' must be a string, got {pattern!r}")
    fields = len(pattern.split())
    if fields not in (5, 6):
        raise InvalidOptions(
            f"{where}: pattern {pattern!r} has {fields} fields; use 5 (minute hour day month "
            f"weekday) or 6 with seconds first (second minute hour day month weekday). "
            f"{EXAMPLES}")
    try:
        croniter(pattern, datetime(2000, 1, 1), second_at_beginning=fields == 6)
    except (ValueError, KeyError) as exc:
        raise InvalidOptions(f"{where}: invalid cron pattern {pattern!r}: {exc}. "
                             f"{EXAMPLES}") from None


def claim_call(keys: Keys, queue: str, event: str, spec: CronSpec, candidates: Sequence[int]
               ) -> Call[tuple[int, int, int]]:
    qk = keys.queue(queue)
    job_id = new_job_id()
    fields = ["id", job_id, "name", event, "queue", queue, "data", jsonutil.dumps(None)]
    args: list[Arg] = [qk.job_prefix, event, job_id, spec.limit, len(candidates), *candidates,
                       len(fields), *fields]
    return Call(scripts.CRON, (*qk.script_keys, qk.cron, qk.cron_runs), args,
                lambda r: (int(r[0]), int(r[1]), int(r[2])))


@dataclass(frozen=True)
class Schedule:
    queue: str
    event: str
    spec: CronSpec


class CronScheduler:
    """One per worker: claims the due ticks of the repeat handlers it serves."""

    def __init__(self, conn: Connection, keys: Keys, schedules: Sequence[Schedule],
                 tz: ZoneInfo) -> None:
        self.conn, self.keys, self.schedules, self.tz = conn, keys, list(schedules), tz
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self.schedules and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="remq-cron")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await wait_cancelled([self._task])
            self._task = None

    async def _loop(self) -> None:
        async def step() -> float:
            return min(await self.tick() / 1000, MAX_SLEEP_S)

        await repeat(step, lambda: self._stopping, "cron: claiming ticks")

    async def tick(self) -> int:
        """Claim every due tick; returns ms until the nearest next tick."""
        wait = int(MAX_SLEEP_S * 1000)
        for s in self.schedules:
            nxt, now = await self._claim(s, int(time.time() * 1000))
            if nxt:
                wait = min(wait, nxt - now + 2)
        return wait

    async def _claim(self, s: Schedule, local_now: int) -> tuple[int, int]:
        reply = (-1, 0, local_now)
        for base in (local_now - SKEW_MS, None):
            if base is None:  # the local clock is far behind Redis: use Redis time
                base = reply[2]
            candidates = s.spec.ticks_after(base, self.tz)
            reply = await arun(self.conn.aio, claim_call(self.keys, s.queue, s.event, s.spec,
                                                         candidates))
            if reply[0] >= 0:
                break
        ran, nxt, now = reply
        if ran == 1:
            log.info("cron: %s in %r ran for its tick; next at %s", s.event, s.queue,
                     datetime.fromtimestamp(nxt / 1000, self.tz).isoformat())
        return nxt, now


__all__ = ["CronScheduler", "CronSpec", "Schedule", "check_pattern", "timezone"]
