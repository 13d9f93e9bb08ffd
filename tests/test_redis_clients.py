"""One place makes Redis clients (``core/store/clients.py``), fed by the settings; and one
``RedisUnavailable``, whichever way it is imported or raised."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import redis
import redis.asyncio
import redis.cluster
from django.test import override_settings

import django_remq
import django_remq.errors
from django_remq.core.store.clients import copy_client, make_client
from django_remq.core.store.redis_compat import AsyncCluster
from django_remq.redis_clients import remq_connection
from django_remq.worker import RedisUnavailable, probe_redis

from .cluster import free_ports

pytestmark = pytest.mark.unit

PACKAGE = Path(django_remq.__file__).parent
FACTORY = PACKAGE / "core" / "store" / "clients.py"
#: What makes a client or a pool in redis-py (calls of these names).
MAKERS = {"from_url", "from_pool", "Redis", "StrictRedis", "RedisCluster", "ConnectionPool",
          "BlockingConnectionPool", "AsyncCluster"}


def _made_at(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in MAKERS:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name}")
    return found


def test_no_module_but_the_factory_makes_a_client() -> None:
    made = [where for path in sorted(PACKAGE.rglob("*.py")) if path != FACTORY
            for where in _made_at(path)]
    assert made == []
    assert _made_at(FACTORY)  # the check sees calls at all


def kwargs_of(client: redis.Redis | redis.asyncio.Redis) -> dict[str, object]:
    return dict(client.connection_pool.connection_kwargs)


async def test_a_url_makes_each_kind_with_its_options() -> None:
    url = "redis://127.0.0.1:1/3"
    sync = make_client(url)
    assert type(sync) is redis.Redis
    assert kwargs_of(sync)["socket_timeout"] == 5.0
    assert kwargs_of(sync)["decode_responses"] is True
    raw = make_client(url, decode=False, socket_timeout=2, socket_connect_timeout=1)
    assert (kwargs_of(raw)["socket_timeout"], kwargs_of(raw)["socket_connect_timeout"]) == (2, 1)
    assert kwargs_of(raw)["decode_responses"] is False
    aio = make_client(f"{url}?socket_timeout=0.5", asyncio=True, extra_read_s=3,
                      max_connections=7)
    assert isinstance(aio, redis.asyncio.Redis)
    assert kwargs_of(aio)["socket_timeout"] == 3.5  # the URL's own, plus the block
    assert aio.connection_pool.max_connections == 7
    tls = make_client("rediss://127.0.0.1:1/0", asyncio=True)
    assert tls.connection_pool.connection_class is redis.asyncio.SSLConnection
    cluster = make_client("redis://127.0.0.1:1/0", cluster=True, asyncio=True)
    assert type(cluster) is AsyncCluster  # made lazily: nothing connects yet
    for client in (aio, tls, cluster):
        await client.aclose()
    sync.close()
    raw.close()


def test_a_client_given_is_copied_with_its_settings() -> None:
    given = redis.Redis(host="127.0.0.1", port=1, ssl=True, password="pw", socket_timeout=4)
    copy = copy_client(given, asyncio=True, decode=False, extra_read_s=1)
    assert copy.connection_pool.connection_class is redis.asyncio.SSLConnection
    assert (kwargs_of(copy)["password"], kwargs_of(copy)["socket_timeout"]) == ("pw", 5)


def test_the_django_layer_feeds_remq_to_the_factory() -> None:
    remq = {"REDIS_URL": "redis://127.0.0.1:1/2?socket_connect_timeout=0.25",
            "SOCKET_TIMEOUT": 7}
    with override_settings(REMQ=remq):
        conn = remq_connection()
        assert not conn.cluster
        kw = kwargs_of(conn.sync)
        assert (kw["socket_timeout"], kw["socket_connect_timeout"], kw["db"]) == (7, 0.25, 2)
        assert kwargs_of(remq_connection(socket_timeout=10).sync)["socket_timeout"] == 10
    with override_settings(REMQ={"REDIS_URL": "redis://127.0.0.1:1/0", "CLUSTER": True}):
        assert remq_connection().cluster


def test_one_redis_unavailable_whichever_way_it_is_imported() -> None:
    from django_remq.core import RedisUnavailable as core_one

    assert RedisUnavailable is django_remq.errors.RedisUnavailable is core_one
    assert issubclass(RedisUnavailable, redis.exceptions.ConnectionError)


@pytest.mark.parametrize("cluster", [False, True])
def test_the_start_up_probe_raises_the_public_redis_unavailable(cluster: bool) -> None:
    [port] = free_ports(1)
    with pytest.raises(django_remq.errors.RedisUnavailable) as caught:
        probe_redis(f"redis://:secret@127.0.0.1:{port}/0", timeout=0.5, cluster=cluster)
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "secret" not in str(caught.value)
