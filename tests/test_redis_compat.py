"""Each use of redis-py's internals (``core/store/redis_compat.py``) against the installed
redis-py (5.2, 6.x, 7.x all run these).

A workaround for a bug asserts the bug is there exactly on the versions its guard names:
the day redis-py fixes it (or a version outside the range has it) the test turns red, and
the guard or the workaround is revisited. A reach past the public API asserts that what
it relies on is still there and still does what the engine needs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster
from redis.asyncio.cluster import ClusterNode, NodesManager
from redis.cluster import PRIMARY, REPLICA
from redis.crc import key_slot
from redis.exceptions import MovedError, NoScriptError

from django_remq.core.store import redis_compat
from django_remq.core.store.redis_compat import REDIS_PY, AsyncCluster, RolesKept

from .workers import await_until

pytestmark = pytest.mark.unit

REVISIT = ("redis-py {} {}: revisit this workaround in core/store/redis_compat.py (its guard, "
           "or whether it is needed at all)")


class Routed(Exception):
    """Raised by the stubbed router once it has seen how a command is routed."""


def test_versions_parse() -> None:
    assert redis_compat.parse_version("7.4.1") == (7, 4, 1)
    assert redis_compat.parse_version("8.0.0b1") == (8, 0, 0)
    assert redis_compat.parse_version("5.2") == (5, 2)
    assert redis_compat.parse_version(redis.__version__) == REDIS_PY


async def _routing_of_a_fresh_client(cls: type[Any]) -> str:
    """How a fresh asyncio cluster client routes its first keyed command: its request
    policy ("none" where redis-py has none), with the network stubbed out."""
    client = cls(host="127.0.0.1", port=1)
    seen: dict[str, Any] = {}

    async def initialize() -> Any:
        client.nodes_manager.default_node = ClusterNode("127.0.0.1", 1, PRIMARY)
        client._initialize = False
        return client

    async def determine_slot(*args: Any) -> int:
        return 0

    async def determine_nodes(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        raise Routed

    client.initialize = initialize
    client._determine_slot = determine_slot
    client._determine_nodes = determine_nodes
    with pytest.raises(Routed):
        await client.execute_command("HINCRBY", "k", "f", 1)
    policy = seen.get("request_policy")
    return "none" if policy is None else str(getattr(policy, "name", policy)).lower()


async def test_a_fresh_async_cluster_client_routes_before_it_learns_the_map() -> None:
    """Workaround 1, :class:`AsyncCluster`: redis-py 7.1+ route a keyed command of a fresh
    client as keyless (no default node yet); it initialises first."""
    plain = await _routing_of_a_fresh_client(redis.asyncio.cluster.RedisCluster)
    bug = plain == "default_keyless"
    assert bug == redis_compat.ROUTES_BEFORE_LEARNING, REVISIT.format(
        redis.__version__, f"routes a fresh client's HINCRBY as {plain!r}")
    ours = await _routing_of_a_fresh_client(AsyncCluster)
    assert ours in ("default_keyed", "none")  # keyed, or no policies at all (before 7.1)
    assert hasattr(AsyncCluster(host="127.0.0.1", port=1), "_initialize")


async def test_relearning_the_map_keeps_node_objects_with_their_old_roles() -> None:
    """Workaround 2, :class:`RolesKept`: redis-py 7.2+ keep a node object they had when
    the map is learnt again, without the role the new map gives it."""
    manager = NodesManager([ClusterNode("127.0.0.1", 1)], False, {})
    old = {"127.0.0.1:2": ClusterNode("127.0.0.1", 2, REPLICA)}
    kept = old["127.0.0.1:2"]
    manager.set_nodes(old, {"127.0.0.1:2": ClusterNode("127.0.0.1", 2, PRIMARY)})
    bug = old["127.0.0.1:2"] is kept and kept.server_type == REPLICA
    assert bug == redis_compat.KEEPS_STALE_NODES, REVISIT.format(
        redis.__version__, "keeps stale node objects" if bug else "replaces node objects")
    manager_of = AsyncCluster(host="127.0.0.1", port=1).nodes_manager
    assert isinstance(manager_of, RolesKept) == redis_compat.KEEPS_STALE_NODES


async def test_roles_kept_routes_through_the_kept_nodes_with_their_new_roles(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A failover as redis-py 7.2+ learn it: the kept objects of the old master (now a
    replica) and of the promoted replica; the map's fresh objects name the new roles."""
    a, b = ClusterNode("127.0.0.1", 2, PRIMARY), ClusterNode("127.0.0.1", 3, REPLICA)
    fresh = [ClusterNode("127.0.0.1", 3, PRIMARY), ClusterNode("127.0.0.1", 2, REPLICA)]

    async def learnt(self: NodesManager) -> None:
        self.nodes_cache = {a.name: a, b.name: b}
        self.slots_cache = dict.fromkeys(range(3), fresh)  # a range's slots share a list
        self.default_node = a

    monkeypatch.setattr(NodesManager, "initialize", learnt)
    manager = NodesManager([a], False, {})
    manager.__class__ = RolesKept  # as AsyncCluster does (the layout must allow it)
    await manager.initialize()
    [first, second] = manager.slots_cache[0]
    assert first is b  # the kept objects, not the fresh ones
    assert second is a
    assert (b.server_type, a.server_type) == (PRIMARY, REPLICA)
    assert manager.default_node is b


class _Client:
    def __init__(self, manager: Any) -> None:
        self.nodes_manager = manager


def _manager_serving(slot: int, *nodes: ClusterNode) -> NodesManager:
    manager = NodesManager(list(nodes), False, {})
    manager.nodes_cache = {node.name: node for node in nodes}
    manager.slots_cache = {slot: [nodes[0]]}
    manager.default_node = nodes[0]
    return manager


async def test_a_moved_reply_points_its_slot_at_the_new_master() -> None:
    """``move_slot``: redis-py 7.2+'s method, else the stored MOVED its lookups apply."""
    slot = key_slot(b"k")
    old, new = ClusterNode("127.0.0.1", 2, PRIMARY), ClusterNode("127.0.0.1", 3, PRIMARY)
    manager = _manager_serving(slot, old, new)
    redis_compat.move_slot(_Client(manager), MovedError(f"{slot} 127.0.0.1:3"))
    assert manager.get_node_from_slot(slot).name == new.name
    if REDIS_PY >= (7, 2):
        assert hasattr(NodesManager, "move_slot"), REVISIT.format(redis.__version__,
                                                                  "has no move_slot")
    elif REDIS_PY >= (6, 0):
        assert hasattr(NodesManager, "update_moved_exception")
    else:
        assert "_moved_exception" in NodesManager.__slots__


async def test_a_failed_node_is_asked_last() -> None:
    """``ask_last``: redis-py 7.2+'s method, else the same reordering of the dicts."""
    nodes = [ClusterNode("127.0.0.1", port, PRIMARY) for port in (2, 3, 4)]
    manager = _manager_serving(0, *nodes)
    redis_compat.ask_last(_Client(manager), nodes[0].name)
    assert list(manager.startup_nodes)[-1] == nodes[0].name
    assert list(manager.nodes_cache)[-1] == nodes[0].name
    assert hasattr(NodesManager, "move_node_to_end_of_cached_nodes") == (REDIS_PY >= (7, 2)), \
        REVISIT.format(redis.__version__, "moved move_node_to_end_of_cached_nodes")


def test_the_cluster_clients_connection_settings_are_found() -> None:
    aclient = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=1, password="pw",
                                                 socket_timeout=3)
    kw = redis_compat.cluster_connection_kwargs(aclient)
    assert (kw["password"], kw["socket_timeout"]) == ("pw", 3)


@pytest.mark.redis
async def test_a_failed_nodes_idle_connections_are_closed(redis_url: str) -> None:
    """``drop_idle_connections``: redis-py 7.2+'s two calls, else the node's disconnect."""
    url = redis.connection.parse_url(redis_url)
    node = ClusterNode(url.get("host", "127.0.0.1"), url.get("port", 6379), PRIMARY)
    assert await node.execute_command("PING")
    [idle] = list(node._free)
    assert idle.is_connected
    await redis_compat.drop_idle_connections(node)
    assert not idle.is_connected
    assert hasattr(ClusterNode, "disconnect_free_connections") == (REDIS_PY >= (7, 2)), \
        REVISIT.format(redis.__version__, "moved disconnect_free_connections")
    await node.disconnect()


@pytest.mark.redis
async def test_a_node_pipeline_replies_in_order_with_errors_as_values(redis_url: str,
                                                                      prefix: str) -> None:
    url = redis.connection.parse_url(redis_url)
    node = ClusterNode(url.get("host", "127.0.0.1"), url.get("port", 6379), PRIMARY,
                       db=url.get("db", 0))
    key = f"{prefix}:list"
    replies = await redis_compat.node_pipeline(node, [("RPUSH", key, "a"), ("LRANGE", key, 0, -1),
                                                      ("EVALSHA", "0" * 40, 0), ("WAIT", 0, 1)])
    assert replies[:2] == [1, [b"a"]]
    assert isinstance(replies[2], NoScriptError)
    assert replies[3] == 0
    await node.disconnect()


def test_a_sync_cluster_client_takes_a_moved_reply_and_relearns_the_map(
        cluster_url: str) -> None:
    """The sync side, on a real cluster: ``move_slot``, ``learn_map``, the connection
    settings the client keeps on its manager."""
    client = redis.cluster.RedisCluster.from_url(cluster_url, socket_timeout=3)
    assert redis_compat.cluster_connection_kwargs(client)["socket_timeout"] == 3
    key = "compat:k"
    serving = client.get_node_from_key(key)
    other = next(n for n in client.get_primaries() if n.name != serving.name)
    redis_compat.move_slot(client, MovedError(f"{key_slot(key.encode())} {other.name}"))
    assert client.get_node_from_key(key).name == other.name
    redis_compat.ask_last(client, serving.name)
    redis_compat.learn_map(client)
    assert client.get_node_from_key(key).name == serving.name
    client.close()


async def test_an_async_cluster_client_relearns_the_map(cluster_url: str) -> None:
    client = AsyncCluster.from_url(cluster_url)
    await client.initialize()
    key = "compat:k"
    serving = client.get_node_from_key(key)
    other = next(n for n in client.get_primaries() if n.name != serving.name)
    redis_compat.move_slot(client, MovedError(f"{key_slot(key.encode())} {other.name}"))
    assert client.get_node_from_key(key).name == other.name
    await redis_compat.alearn_map(client)
    assert client.get_node_from_key(key).name == serving.name
    assert await client.execute_command("SET", key, "v")
    await client.aclose()


@pytest.mark.redis
async def test_an_idle_connection_the_server_closed_is_seen_without_a_round_trip(
        redis_url: str, r: redis.Redis) -> None:
    """``closed_by_server``: the asyncio connection's private ``_reader`` (a StreamReader)
    tells, once the event loop has read the server's close."""
    client = redis.asyncio.Redis.from_url(redis_url)
    pool = client.connection_pool
    conn = pool.connection_class(**pool.connection_kwargs)
    assert not redis_compat.closed_by_server(conn)  # not connected yet: it connects on send
    await conn.connect()
    assert isinstance(getattr(conn, "_reader", None), asyncio.StreamReader), REVISIT.format(
        redis.__version__, "keeps no _reader on its asyncio connections")
    await conn.send_command("CLIENT", "ID")
    client_id = await conn.read_response()
    assert not redis_compat.closed_by_server(conn)
    r.client_kill_filter(_id=str(client_id))
    assert await await_until(lambda: redis_compat.closed_by_server(conn), timeout=5)
    await conn.disconnect()
    await client.aclose()
