"""Shared fixtures: a real Redis (``REMQ_TEST_REDIS_URL``, default db 15) and an
isolated key prefix per test, so tests never see each other's keys."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from django_remq.core import TaskManager

REDIS_URL = os.environ.get("REMQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:  # fail loudly: these tests need a real server
        raise RuntimeError(f"tests need a Redis at {REDIS_URL} ({exc}); start one with "
                           "`redis-server --daemonize yes` or set REMQ_TEST_REDIS_URL") from exc
    return REDIS_URL


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
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
def make_tm(redis_url: str, prefix: str) -> Iterator[object]:
    """Factory: ``make_tm(concurrency=..., processor=...)`` -> TaskManager on the test prefix."""
    made: list[TaskManager] = []

    def make(**kwargs: object) -> TaskManager:
        kwargs.setdefault("prefix", prefix)
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
