"""What one gateway user holds in flight, counted in Redis: :class:`Holds`.

``max_in_flight`` bounds one connection, and a reconnect starts it afresh; a job a
client parks outlives its connection. So each emit also takes a *hold* for its user
(the user id, or an anonymous client's address) in one sorted set per user, shared by
every connection and gateway process: member ``<queue>:<job id>``, score a deadline.
At ``max_in_flight_per_user`` holds the emit is refused with ``too_many_in_flight``.

A hold ends when its task's ``task_finished`` reaches a connection of this gateway, or
when the emit fails. Nothing else has to end it, so nothing can leak it for ever:

- at the limit, the holds are checked against the job records (at most once per
  :data:`PRUNE_EVERY_MS` per user) and those of finished or deleted jobs dropped: the
  jobs of a closed connection, or of a gateway that crashed, stop counting when they
  end;
- a hold lapses at its deadline, :data:`HOLD_GRACE_MS` after its job's run time
  (which ``max_client_delay_ms`` bounds), and the key expires with its last hold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from ..core import TaskManager
from .keys import GatewayKeys
from .protocol import FINAL, ClientError
from .scripts import HOLD, Call, Cmd, run, watch

log = logging.getLogger("django_remq.gateway")

#: A hold lapses this long after its job's run time, released or not.
HOLD_GRACE_MS = 3_600_000
#: At the limit, a user's holds are checked against the job records at most this often.
PRUNE_EVERY_MS = 5_000
NO_LIMIT = -1


def holder(scope: Mapping[str, Any]) -> str:
    """Whose holds a connection takes: ``user:<pk>``, or ``addr:<ip>`` when anonymous
    (behind a proxy, run the server so that it sets the client's address)."""
    user = scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    client = scope.get("client") or ("unknown",)
    return f"addr:{client[0]}"


class Holds:
    """One connection's handle on its user's holds."""

    def __init__(self, tm: TaskManager, who: str, limit: int) -> None:
        self.tm, self.who, self.limit = tm, who, limit
        self.keys = GatewayKeys(tm.keys.prefix)
        self.key = self.keys.holds(who)

    async def take(self, queue: str, task_id: str, run_at_ms: int = 0, *,
                   force: bool = False) -> None:
        """Hold ``task_id`` for this user, or raise ``too_many_in_flight``; ``force``:
        whatever the count (a hold moved to the job an emit merged into)."""
        if await self._take(queue, task_id, run_at_ms, NO_LIMIT if force else self.limit):
            return
        if await self._prune() and await self._take(queue, task_id, run_at_ms, self.limit):
            return
        raise ClientError("too_many_in_flight", f"you already have {self.limit} unfinished "
                          "tasks (GATEWAY['max_in_flight_per_user'], over all your "
                          "connections); wait for one to finish")

    async def release(self, queue: str, task_id: str) -> None:
        await self.tm.conn.aio.zrem(self.key, f"{queue}:{task_id}")

    async def _take(self, queue: str, task_id: str, run_at_ms: int, limit: int) -> bool:
        now = int(time.time() * 1000)
        deadline = max(run_at_ms, now) + HOLD_GRACE_MS
        call = Call(HOLD, (self.key,), [now, limit, f"{queue}:{task_id}", deadline], int)
        return bool((await run(self.tm, [call]))[0])

    async def _prune(self) -> bool:
        """Drop the holds of jobs that ended; False when none did, or a prune of this
        user's holds ran lately (so a client at its limit cannot make us read records)."""
        client = self.tm.conn.aio
        if not await client.set(self.keys.holds_pruned(self.who), "1", nx=True,
                                px=PRUNE_EVERY_MS):
            return False
        members = [m.decode() if isinstance(m, bytes) else m
                   for m in await client.zrange(self.key, 0, -1)]
        held = [m.partition(":")[::2] for m in members]  # queue names have no ":"
        states = await run(self.tm, [watch(self.tm, q, t, flag=False) for q, t in held])
        ended = [m for m, state in zip(members, states, strict=True)
                 if state is None or state.status in FINAL]
        if ended:
            await run(self.tm, [Cmd(("ZREM", self.key, *ended))])
            log.debug("gateway: %d holds of %s ended without their task_finished reaching "
                      "a connection", len(ended), self.who)
        return bool(ended)
