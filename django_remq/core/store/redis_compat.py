"""Everything that leans on redis-py's internals, in one place.

redis-py's cluster clients give no public way to do some of what the engine needs (send a
``WAIT`` on the connection the writes went on, take a ``MOVED`` into the slot map, learn
the map again after a node failed), and redis-py 7.1 to 7.4 have bugs the engine works
around. Each such use is here, with what it relies on, on which redis-py versions (the
package supports 5.2 to 7.x), and its guard: a version check where the behaviour
differs, a probe of the feature where the name moved. ``tests/test_redis_compat.py``
checks each against the installed redis-py: an upgrade that fixes a bug or moves a name
turns one of those tests red, so the workaround is revisited, not left in place blindly.
No other module touches a private attribute of a redis-py object.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio.cluster
import redis.cluster
from redis.asyncio.cluster import PipelineCommand
from redis.cluster import PRIMARY, REPLICA
from redis.exceptions import MovedError


def parse_version(text: str) -> tuple[int, ...]:
    """``"7.4.1"`` -> ``(7, 4, 1)``; a suffix (``"8.0.0b1"``) ends the number it is on."""
    return tuple(int(re.match(r"\d*", part).group() or 0)  # type: ignore[union-attr]
                 for part in text.split(".")[:3])


REDIS_PY = parse_version(redis.__version__)

#: redis-py 7.1 and up choose an asyncio cluster client's routing before it learns the
#: slot map (see :class:`AsyncCluster`).
ROUTES_BEFORE_LEARNING = REDIS_PY >= (7, 1)
#: redis-py 7.2 and up keep an asyncio cluster client's node objects, with their old
#: roles, when it learns the map again (see :class:`RolesKept`).
KEEPS_STALE_NODES = REDIS_PY >= (7, 2)


class RolesKept(redis.asyncio.cluster.NodesManager):
    """redis-py's asyncio ``NodesManager`` that keeps roles right when it relearns the map.

    Bug (redis-py 7.2 to 7.4, :data:`KEEPS_STALE_NODES`): ``initialize`` keeps the node
    objects it had (their connections) without their new roles, and routes slots through
    fresh objects: after a failover the promoted replica stays a "replica" in
    ``nodes_cache``, so ``SCRIPT LOAD`` (sent to the primaries) never reaches it and
    every EVALSHA there answered NOSCRIPT for as long as the worker lived
    (tests/test_cluster_failover.py); and each relearning left the fresh objects'
    connections unclosed. Here slots go through the kept objects, which take the roles
    ``CLUSTER SLOTS`` just gave. Relies on ``nodes_cache``, ``slots_cache`` and
    ``default_node``, and on a client's manager becoming one by ``__class__`` (redis-py
    makes the manager itself, with no way to pass another).
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
    """redis-py's asyncio ``RedisCluster``, as the engine makes every one (see
    :func:`.clients.make_client`), with the workarounds its version needs.

    Bug (redis-py 7.1 to 7.4, :data:`ROUTES_BEFORE_LEARNING`): a command's routing is
    chosen before the client initialises (a fresh client has no default node yet, so
    no slot is looked up and a keyed command is routed as keyless): commands issued
    concurrently on a fresh client broke connections in use ("Connection closed by
    server") and the retry applied some twice (3,000 HINCRBYs, 64 at a time, counted
    3,137 to 3,209). Initialising first, under redis-py's own lock, counted exactly
    3,000 in every run. Relies on the private ``_initialize`` flag redis-py sets until
    the client has learnt the map (and again when it must relearn it). Its slot map is
    relearnt by :class:`RolesKept` where :data:`KEEPS_STALE_NODES`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if KEEPS_STALE_NODES:
            self.nodes_manager.__class__ = RolesKept  # the same state, one method more

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if ROUTES_BEFORE_LEARNING and self._initialize:
            await self.initialize()
        return await super().execute_command(*args, **kwargs)


def move_slot(client: Any, error: MovedError) -> None:
    """Point the slot of a ``MOVED`` reply at the node it names, in a cluster client's
    (sync or asyncio) slot map, as the client does for the commands it sends itself.

    redis-py 7.2 and up: ``nodes_manager.move_slot``. Before, the reply is stored,
    ``update_moved_exception`` (sync clients, and asyncio ones from 6.0), else the private
    ``_moved_exception`` (5.x's asyncio client sets it so), and applied by the manager's
    next ``get_node_from_slot``: done here at once, as the client's ``get_node_from_key``
    reads the map without applying it. Guarded by probing for each name in turn.
    """
    manager = client.nodes_manager
    if hasattr(manager, "move_slot"):
        manager.move_slot(error)
        return
    if hasattr(manager, "update_moved_exception"):
        manager.update_moved_exception(error)
    else:
        manager._moved_exception = error
    manager.get_node_from_slot(error.slot_id)


def ask_last(client: Any, name: str) -> None:
    """Make the node ``name`` (one that just failed) the last a cluster client asks for the
    slot map, and the last choice for its default node, as redis-py 7.2 and up do after a
    lost connection (``nodes_manager.move_node_to_end_of_cached_nodes``). Before 7.2 the
    same is done here on the manager's ``startup_nodes`` and ``nodes_cache`` dicts (the
    order they are tried in). Guarded by probing for the method."""
    manager = client.nodes_manager
    if hasattr(manager, "move_node_to_end_of_cached_nodes"):
        manager.move_node_to_end_of_cached_nodes(name)
        return
    for nodes in (manager.startup_nodes, manager.nodes_cache):
        if name in nodes and len(nodes) > 1:
            nodes[name] = nodes.pop(name)


async def drop_idle_connections(node: Any) -> None:
    """Close an asyncio cluster node's idle connections and have those in use closed when
    handed back (a node that failed: they are stale), as redis-py 7.2 and up do after a
    lost connection (``update_active_connections_for_reconnect`` and
    ``disconnect_free_connections``). Before 7.2 there is no such way: the node's
    connections are all closed (``disconnect``; redis-py's own client of those versions
    closes every node's). Guarded by probing for the methods."""
    if hasattr(node, "disconnect_free_connections"):
        node.update_active_connections_for_reconnect()
        await node.disconnect_free_connections()
    else:
        await node.disconnect()


def learn_map(client: redis.cluster.RedisCluster) -> None:
    """Learn a sync cluster client's slot map again now (``nodes_manager.initialize``: the
    client's own relearning is internal, done when it sees a failure itself)."""
    client.nodes_manager.initialize()


async def alearn_map(client: redis.asyncio.cluster.RedisCluster) -> None:
    """Async twin of :func:`learn_map` (its ``initialize()`` only learns a map it lacks)."""
    await client.nodes_manager.initialize()


def cluster_connection_kwargs(client: Any) -> dict[str, Any]:
    """The settings a cluster client (sync or asyncio) makes its nodes' connections with:
    the sync client keeps them on its ``nodes_manager``, the asyncio one on itself."""
    if isinstance(client, redis.cluster.RedisCluster):
        return dict(client.nodes_manager.connection_kwargs)
    return dict(client.connection_kwargs)


async def node_pipeline(node: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Send ``commands`` to one node of an asyncio cluster client in one round trip, on one
    of that node's pooled connections (its ``execute_pipeline``, which takes redis-py's
    ``PipelineCommand``): a ``WAIT`` behind writes counts the replicas that have them only
    on the connection they went on, which no public call of the cluster client gives.
    Each reply in order, an error reply as the exception; a lost connection is raised.
    Unchanged from redis-py 5.2 to 7.4."""
    batch = [PipelineCommand(n, *command) for n, command in enumerate(commands)]
    await node.execute_pipeline(batch)
    return [command.result for command in batch]


def closed_by_server(conn: Any) -> bool:
    """Whether an idle asyncio connection was closed by the server (an EOF or a reset the
    event loop has read), so that a call not safe to repeat never goes out on it
    (:mod:`.line`). Read from its private ``_reader`` (the ``asyncio.StreamReader``,
    redis-py 5.2 to 7.4), as the public ``can_read_destructive`` costs a turn of the
    event loop per call. Guarded by probing for it: without one, ``False`` (the call is
    sent, and a closed connection raises, as for any connection lost mid-call)."""
    reader = getattr(conn, "_reader", None)
    if reader is None:
        return False
    return bool(reader.at_eof() or reader.exception() is not None)
