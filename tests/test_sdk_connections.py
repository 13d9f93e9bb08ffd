"""Sdk connections: every ``Sdk()`` of a process shares one; ``Sdk(url)`` has its own,
closed by ``close()`` or its ``with`` block."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from django.test import override_settings

from django_remq import Sdk
from django_remq.core.sdk import Sdk as CoreSdk

from .conftest import REDIS_URL
from .workers import wait_until

pytestmark = pytest.mark.redis


@pytest.fixture
def name() -> str:
    """A client name for the connections under test, to count them in ``CLIENT LIST``."""
    return f"sdk-{uuid.uuid4().hex[:8]}"


def named(r: redis.Redis, name: str) -> int:
    return sum(1 for client in r.client_list() if client["name"] == name)


def test_every_sdk_of_the_settings_shares_one_connection(r, prefix, name):
    """Twenty ``Sdk()`` (a view's each request) hold the connections of one; closing one
    leaves them open for the others; a change of ``REMQ`` gets a connection of its own."""
    url = f"{REDIS_URL}?client_name={name}"
    with override_settings(REMQ={"REDIS_URL": url, "PREFIX": prefix}):
        sdks = [Sdk() for _ in range(20)]
        assert all(sdk.get_job("nope", "default") is None for sdk in sdks)
        assert all(sdk.list_jobs(queue="default") == [] for sdk in sdks)
        assert named(r, name) == 1
        sdks[0].close()
        assert sdks[1].get_job("nope", "default") is None
        assert named(r, name) == 1
        kept = sdks[0].conn
    with override_settings(REMQ={"REDIS_URL": url, "PREFIX": prefix, "SOCKET_TIMEOUT": 3}):
        assert Sdk().conn is not kept
        assert Sdk().conn is Sdk().conn
        assert Sdk().conn.sync.connection_pool.connection_kwargs["socket_timeout"] == 3


@pytest.mark.parametrize("kind", [Sdk, CoreSdk])
def test_an_sdk_of_its_own_is_closed_by_its_block(r, prefix, name, kind):
    """``with`` and ``async with``: the block's end closes what the Sdk opened, the
    sync client's connections and the running loop's."""
    url = f"{REDIS_URL}?client_name={name}"
    with kind(url, prefix=prefix) as sdk:
        assert sdk.get_job("nope", "default") is None
        assert named(r, name) >= 1
    assert wait_until(lambda: named(r, name) == 0, 5)

    async def both() -> int:
        async with kind(url, prefix=prefix) as sdk:
            assert await sdk.aget_job("nope", "default") is None
            assert sdk.get_job("nope", "default") is None
            return named(r, name)

    assert asyncio.run(both()) >= 2
    assert wait_until(lambda: named(r, name) == 0, 5)


def test_an_sdk_leaves_a_client_it_was_given_open(r, prefix, name):
    client = redis.Redis.from_url(f"{REDIS_URL}?client_name={name}")
    with CoreSdk(client, prefix=prefix) as sdk:
        assert sdk.get_queues() == []
    assert client.ping()
    client.close()
