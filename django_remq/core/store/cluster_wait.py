"""``WAIT`` on a Redis Cluster: each master's writes, then its ``WAIT``, on one connection.

``WAIT`` counts the replicas that have the writes made on *its own connection*, and it
names no key: redis-py's cluster pipeline would send it to every master, on other
connections than the writes, and count nothing useful. A round trip that ends with a
``WAIT`` step (``Cmd.after_writes``) therefore goes node by node here: its steps grouped
by the master serving their slot (the cluster client's slot map), each group sent with
a ``WAIT`` behind it on one of that master's connections (the cluster client's own
pools; asyncio: all groups at once, sync: in turn). The ``WAIT``'s reply is the fewest
replicas any of those masters confirmed.

A MOVED reply (a failover or resharding the client has not seen yet) updates the slot
map, and the round trip sends that step again (:func:`.scripts._round_trip`). So does
CLUSTERDOWN (a restarted master that has not heard the cluster yet, a failover under
way), after the pause and the new slot map redis-py's cluster client takes for the
commands it sends itself. A lost connection makes the client learn the map again, then
is raised as usual. ASK and TRYAGAIN (a slot being migrated) are raised: the caller
retries as after any error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, MovedError, RedisClusterException, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import redis_compat


class Step(Protocol):
    """What a round trip's step offers here (a :class:`.scripts.Call` or ``Cmd``; named by
    shape, so this module does not import the one that imports it)."""

    @property
    def command(self) -> tuple[Any, ...]: ...

    @property
    def key(self) -> str | None: ...


log = logging.getLogger("django_remq.cluster")

#: The steps (their indexes) each master takes, with that master.
Groups = list[tuple[Any, list[int]]]
#: How long to let a master that answered CLUSTERDOWN catch up (redis-py's pause).
DOWN_PAUSE_S = 0.25


def waits(steps: Sequence[Step]) -> bool:
    """Whether a round trip ends with a ``WAIT`` that must follow its writes."""
    return bool(steps) and bool(getattr(steps[-1], "after_writes", False))


def plan(steps: Sequence[Step], node_of: Callable[[str], Any]) -> Groups:
    """The writes (every step but the last, the ``WAIT``) grouped by master, in order."""
    if any(getattr(step, "after_writes", False) for step in steps[:-1]):
        raise ValueError("on a cluster, a round trip's only WAIT must be its last step")
    groups: dict[str, tuple[Any, list[int]]] = {}
    for i, step in enumerate(steps[:-1]):
        if step.key is None:
            raise ValueError(f"{step.command[0]!r} names no key: on a cluster it has no "
                             "master to go to before a WAIT")
        node = node_of(step.key)
        groups.setdefault(node.name, (node, []))[1].append(i)
    if not groups:
        raise ValueError("a WAIT with no writes before it waits for nothing")
    return list(groups.values())


def _merged(steps: Sequence[Step], groups: Groups, replies: Sequence[Sequence[Any]],
            client: Any) -> list[Any]:
    """Each step's reply in order; the ``WAIT``'s: the fewest replicas any master
    confirmed (or its first error). MOVED replies update the slot map first."""
    out: list[Any] = [None] * len(steps)
    counts: list[Any] = []
    for (_, indexes), node_replies in zip(groups, replies, strict=True):
        *writes, count = node_replies
        for i, reply in zip(indexes, writes, strict=True):
            if isinstance(reply, MovedError):
                redis_compat.move_slot(client, reply)
            out[i] = reply
        counts.append(count)
    errors = [c for c in counts if isinstance(c, Exception)]
    out[-1] = errors[0] if errors else min(counts)
    return out


def _down(groups: Groups, replies: Sequence[Sequence[Any]]) -> Any:
    """The first master that answered CLUSTERDOWN, if any."""
    return next((node for (node, _), node_replies in zip(groups, replies, strict=True)
                 if any(isinstance(r, ClusterDownError) for r in node_replies)), None)


def _lost(replies: Sequence[Any]) -> Exception | None:
    """A lost connection or a timeout among a node's replies: the node is away."""
    return next((r for r in replies
                 if isinstance(r, RedisConnectionError | RedisTimeoutError)), None)


def send(client: RedisCluster, steps: Sequence[Step]) -> list[Any]:
    """Sync driver: one pipeline per master, on a connection of that master's pool."""
    groups = plan(steps, client.get_node_from_key)
    replies: list[list[Any]] = []
    for node, indexes in groups:
        pipe: Any = client.get_redis_connection(node).pipeline(transaction=False)
        for i in (*indexes, len(steps) - 1):
            pipe.execute_command(*steps[i].command)
        try:
            replies.append(pipe.execute(raise_on_error=False))
        except (RedisConnectionError, RedisTimeoutError):
            relearn(client, node)
            raise
    if (down := _down(groups, replies)) is not None:
        time.sleep(DOWN_PAUSE_S)
        relearn(client, down)
    return _merged(steps, groups, replies, client)


def relearn(client: RedisCluster, failed: Any = None) -> None:
    """Learn the slot map again, as redis-py's client does after a node failed or said
    CLUSTERDOWN (asked last, ``failed``); a cluster still electing a new master is left
    for next time."""
    if failed is not None:
        redis_compat.ask_last(client, failed.name)
    try:
        redis_compat.learn_map(client)
    except (RedisError, RedisClusterException) as exc:
        log.debug("cannot learn the cluster's slot map yet: %s", exc)


async def arelearn(client: AsyncRedisCluster, failed: Any = None) -> None:
    """Async twin of :func:`relearn`; a failed node's idle connections are dropped too."""
    if failed is not None:
        await redis_compat.drop_idle_connections(failed)
        redis_compat.ask_last(client, failed.name)
    try:
        await redis_compat.alearn_map(client)
    except (RedisError, RedisClusterException) as exc:
        log.debug("cannot learn the cluster's slot map yet: %s", exc)


async def asend(client: AsyncRedisCluster, steps: Sequence[Step]) -> list[Any]:
    """Async twin of :func:`send`: the masters' pipelines go out at once."""
    await client.initialize()
    groups = plan(steps, lambda key: client.get_node_from_key(key))
    done = await asyncio.gather(
        *(redis_compat.node_pipeline(node, [steps[i].command for i in (*indexes, len(steps) - 1)])
          for node, indexes in groups), return_exceptions=True)
    for (node, _), outcome in zip(groups, done, strict=True):
        error = outcome if isinstance(outcome, BaseException) else _lost(outcome)
        if isinstance(error, RedisConnectionError | RedisTimeoutError | OSError):
            await arelearn(client, node)
        if error is not None:
            raise error
    replies = [outcome for outcome in done if not isinstance(outcome, BaseException)]
    if (down := _down(groups, replies)) is not None:
        await asyncio.sleep(DOWN_PAUSE_S)
        await arelearn(client, down)
    return _merged(steps, groups, replies, client)
