"""redis-py's asyncio ``RedisCluster`` with two fixes (redis-py 7.1 to 7.4), as the engine
uses it (:class:`.connection.Connection` makes every asyncio cluster client with it)."""

from __future__ import annotations

from typing import Any

import redis.asyncio.cluster
from redis.cluster import PRIMARY, REPLICA


class _NodesManager(redis.asyncio.cluster.NodesManager):
    """redis-py 7.4's asyncio ``NodesManager`` that keeps roles right when it relearns the map.

    Its ``initialize`` keeps the node objects it had (their connections) without their
    new roles, and routes slots through fresh objects: after a failover the promoted
    replica stays a "replica" in ``nodes_cache``, so ``SCRIPT LOAD`` (sent to the
    primaries) never reaches it and every EVALSHA there answered NOSCRIPT for as long
    as the worker lived (seen in tests/test_cluster_failover.py); and each relearning
    left the fresh objects' connections unclosed. Here slots go through the kept
    objects, which take the roles ``CLUSTER SLOTS`` just gave.
    """

    __slots__ = ()  # redis-py's layout, so that a client's manager can become one

    async def initialize(self) -> None:
        await super().initialize()
        kept = self.nodes_cache
        ranges = {id(nodes): nodes for nodes in self.slots_cache.values()}  # one per range
        for nodes in ranges.values():  # in place: every slot of a range shares the list
            nodes[:] = [kept.get(node.name, node) for node in nodes]
        primaries = {nodes[0].name for nodes in ranges.values() if nodes}
        for name, node in kept.items():
            node.server_type = PRIMARY if name in primaries else REPLICA
        if self.default_node is None or self.default_node.name not in primaries:
            self.default_node = next((kept[name] for name in primaries if name in kept),
                                     self.default_node)


class AsyncCluster(redis.asyncio.cluster.RedisCluster):
    """``redis.asyncio.RedisCluster`` that learns the slot map before it routes a command.

    redis-py 7.1 to 7.4 choose a command's routing before initialising (a fresh client
    has no default node yet, so no slot is looked up): commands issued concurrently on
    a fresh client broke connections in use ("Connection closed by server") and the
    retry applied some twice (3,000 HINCRBYs, 64 at a time, counted 3,137 to 3,209).
    Initialising first, under redis-py's own lock, counted exactly 3,000 in every run
    (5 at 16 and 5 at 64 at a time, on 7.4.1). Its slot map is relearned by
    :class:`_NodesManager`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nodes_manager.__class__ = _NodesManager  # the same state, one method more

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            await self.initialize()
        return await super().execute_command(*args, **kwargs)
