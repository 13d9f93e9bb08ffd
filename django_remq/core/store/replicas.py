"""``WAIT_REPLICAS``: writes that count as done only once replicas have them.

Redis replicates asynchronously, so a failover can lose the last writes. With
``wait_replicas=N`` an emit pipelines ``WAIT N timeout`` right after its scripts, on
the same connection (one round trip): it returns only once N replicas have the job,
and raises :class:`~..errors.ReplicaTimeout` when fewer confirm in time (the job is
written on the master all the same and will run unless that master is lost). A
worker's acknowledgements (each finish.lua batch) wait the same way; a short count
there is logged and waited out (:func:`confirm`) before the worker reports the jobs
finished, while their entries simply stay acknowledged on the master.

On a Redis Cluster each master that took some of the writes gets its own ``WAIT``, on
the connection the writes went on (:mod:`.cluster_wait`); the count is the fewest any of
them confirmed, and :func:`confirm` asks each of those masters.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

from ..errors import InvalidOptions, ReplicaTimeout
from .scripts import Cmd

log = logging.getLogger("django_remq.replicas")

DEFAULT_TIMEOUT_MS = 1000
MAX_TIMEOUT_MS = 3_600_000


class NotMaster(RedisConnectionError):
    """The server that took the writes is a replica now (a failover): what was waited
    for is written again on the new master, as after a lost connection."""


@dataclass(frozen=True)
class ReplicaWait:
    """How many replicas must confirm a write, and how long to wait for them (ms)."""

    replicas: int
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    @classmethod
    def of(cls, replicas: Any, timeout_ms: Any = DEFAULT_TIMEOUT_MS) -> ReplicaWait | None:
        """Validated settings; ``None`` when nothing waits (0 replicas, the default)."""
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise InvalidOptions(f"wait_replicas must be an int >= 0 (0: do not wait), "
                                 f"got {replicas!r}")
        if (not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool)
                or not 1 <= timeout_ms <= MAX_TIMEOUT_MS):
            raise InvalidOptions(f"wait_timeout_ms must be an int in 1..{MAX_TIMEOUT_MS} (ms; "
                                 f"Redis's WAIT 0 would block forever), got {timeout_ms!r}")
        return cls(replicas, timeout_ms) if replicas else None

    def step(self, on_short: Callable[[int], Any] | None = None) -> Cmd[int]:
        """``WAIT``, to pipeline right after the writes it covers; replies with the count
        of replicas that confirmed. ``on_short(count)`` (e.g. raising) runs when too few."""
        def parse(reply: Any) -> int:
            count = int(reply)
            if count < self.replicas and on_short is not None:
                on_short(count)
            return count

        return Cmd(("WAIT", self.replicas, self.timeout_ms), parse, after_writes=True)

    def emit_step(self, job_ids: Sequence[str]) -> Cmd[int]:
        """The emitter's WAIT: too few replicas raise :class:`ReplicaTimeout`."""
        def short(count: int) -> None:
            shown = ", ".join(job_ids[:5]) + (f" and {len(job_ids) - 5} more"
                                              if len(job_ids) > 5 else "")
            raise ReplicaTimeout(
                f"emit: only {count} of {self.replicas} replicas confirmed job(s) {shown} "
                f"within {self.timeout_ms} ms (WAIT_REPLICAS). The jobs ARE written on the "
                "master and will run unless it fails before replicating them; do not emit "
                "them again blindly (check with Sdk.get_job, or emit again with the same "
                "options['id']: a live job is not enqueued twice). Is a replica attached and "
                "keeping up? (INFO replication)", count)

        return self.step(short)


def _caught_up(role: Any, offset: int) -> int:
    """Replicas whose acknowledged offset has reached ``offset``, from a ROLE reply."""
    return sum(1 for replica in role[2] if int(replica[2]) >= offset)


async def _role(client: AsyncRedis, master: Any) -> Any:
    """``ROLE`` on ``master`` (a cluster node; ``None``: the one server there is); on a
    master it gives its replication offset and each replica's acknowledged offset."""
    route = {} if master is None else {"target_nodes": master}
    role = await cast(Any, client).execute_command("ROLE", **route)
    if role[0] != "master":
        where = "" if master is None else f" {master.name}"
        raise NotMaster(f"the server{where} that took the writes is a {role[0]} now "
                        "(a failover?)")
    return role


def _masters(client: AsyncRedis, keys: Sequence[str]) -> list[Any]:
    """The masters serving ``keys`` on a cluster; ``[None]`` on one server."""
    if not isinstance(client, AsyncRedisCluster):
        return [None]
    return list({node.name: node for node in map(client.get_node_from_key, keys)}.values())


async def confirm(client: AsyncRedis, wait: ReplicaWait, what: str,
                  delays: Callable[[], float], keys: Sequence[str] = ()) -> None:
    """Wait, however long it takes, until ``wait.replicas`` replicas have every write made
    so far: the master's offset now covers ours, and replicas acknowledge theirs every
    second (ROLE), whichever connection asks. On a cluster: on each master serving
    ``keys`` (the keys written)."""
    for master in _masters(client, keys):
        role = await _role(client, master)
        offset = int(role[1])
        while True:
            count = _caught_up(role, offset)
            if count >= wait.replicas:
                log.info("%s: %d of %d replicas have it now", what, count, wait.replicas)
                break
            delay = delays()
            log.warning("%s: only %d of %d replicas confirmed within %d ms "
                        "(WAIT_REPLICAS); checking again in %.1fs", what, count,
                        wait.replicas, wait.timeout_ms, delay)
            await asyncio.sleep(delay)
            role = await _role(client, master)
