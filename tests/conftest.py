"""Shared fixtures: a real Redis (``REMQ_TEST_REDIS_URL``, default db 15) and an
isolated key prefix per test, so tests never see each other's keys.

A test runs on one node and on a local Redis Cluster too when marked
``@on_both()`` (from :mod:`tests.cluster`): ``redis_url`` is then the cluster's, and
``r``/``make_tm`` talk to it through the cluster clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.cluster

from django_remq.core import TaskManager

pytest_plugins = ["tests.cluster", "tests.process_stack", "tests.admin_support"]

#: Every test is in one of these tiers (a module's ``pytestmark``, or a test's own mark):
#: CI runs the ones that depend on the Python / Django / redis-py stack on every leg of
#: its matrix and the others (cluster, browser, packaging) once.
TIERS = ("unit", "redis", "processes", "cluster", "browser", "packaging")

REDIS_URL = os.environ.get("REMQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    if getattr(request, "param", "node") == "cluster":
        return str(request.getfixturevalue("cluster_url"))
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:  # fail loudly: these tests need a real server
        raise RuntimeError(f"tests need a Redis at {REDIS_URL} ({exc}); start one with "
                           "`redis-server --daemonize yes` or set REMQ_TEST_REDIS_URL") from exc
    return REDIS_URL


@pytest.fixture
def on_cluster(request: pytest.FixtureRequest) -> bool:
    """True when this test runs on the local Redis Cluster (``@on_both()``'s second run)."""
    callspec = getattr(request.node, "callspec", None)
    return callspec is not None and callspec.params.get("redis_url") == "cluster"


@pytest.fixture
def r(redis_url: str, on_cluster: bool) -> Iterator[redis.Redis]:
    client: redis.Redis = (
        redis.cluster.RedisCluster.from_url(redis_url, decode_responses=True)  # type: ignore[assignment]
        if on_cluster else redis.Redis.from_url(redis_url, decode_responses=True))
    yield client
    client.close()


@pytest.fixture
def prefix(r: redis.Redis) -> Iterator[str]:
    """A fresh key prefix; its keys are deleted after the test."""
    p = f"t{uuid.uuid4().hex[:10]}"
    yield p
    keys = list(r.scan_iter(f"{p}:*", count=1000))
    if keys:
        r.delete(*keys)


@pytest.fixture
def make_tm(redis_url: str, prefix: str, on_cluster: bool) -> Iterator[object]:
    """Factory: ``make_tm(concurrency=..., processor=...)`` -> TaskManager on the test prefix."""
    made: list[TaskManager] = []

    def make(**kwargs: object) -> TaskManager:
        kwargs.setdefault("prefix", prefix)
        kwargs.setdefault("cluster", on_cluster)
        tm = TaskManager.init(db=redis_url, **kwargs)  # type: ignore[arg-type]
        made.append(tm)
        return tm

    yield make
    for tm in made:
        tm.conn.close()


@pytest.fixture
async def tm(make_tm: object) -> AsyncIterator[TaskManager]:
    manager = make_tm()  # type: ignore[operator]
    yield manager
    await manager.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """An ``@on_both()`` test's cluster run, and any test that starts a cluster, is in the
    cluster tier; a test in no tier is refused, so a new module cannot dodge the split."""
    untiered = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_cluster = callspec is not None and callspec.params.get("redis_url") == "cluster"
        if on_cluster or "cluster_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            untiered.append(item.nodeid)
    if untiered:
        raise pytest.UsageError(
            f"tests in no tier ({', '.join(untiered[:5])}{' ...' if len(untiered) > 5 else ''}): "
            f"give the module `pytestmark = pytest.mark.<tier>`, tier one of {', '.join(TIERS)}")


@pytest.fixture
def private_redis_url() -> Iterator[str]:
    """A redis-server of this test's own, for what touches the whole server (``SCRIPT
    FLUSH``): on the shared one it would pull scripts from under tests running beside it."""
    import shutil
    import subprocess

    from .workers import free_port, pings, wait_until

    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    try:
        assert wait_until(lambda: pings(client), timeout=10), "private redis-server did not start"
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)
