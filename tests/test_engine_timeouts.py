"""A frozen Redis makes emit raise within the socket timeout; an idle worker is not cut off."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis

from django_remq.core import RedisTimeout, RedisUnavailable, TaskManager
from django_remq.core.sdk import Sdk
from django_remq.core.store.client_copies import DEFAULT_SOCKET_TIMEOUT
from django_remq.core.store.connection import Connection

from .workers import free_port

pytestmark = pytest.mark.processes


@pytest.fixture
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of our own on a free port (we freeze it with SIGSTOP)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                                 "--appendonly", "no", "--dir", tmp],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    proc.kill()
                    raise
                time.sleep(0.05)
        client.close()
        try:
            yield url, proc
        finally:
            if proc.poll() is None:  # a test may have stopped it already
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
                proc.wait(10)


def test_url_clients_have_timeouts_and_the_url_query_wins():
    conn = Connection("redis://127.0.0.1:6379/15")
    kw = conn.sync.connection_pool.connection_kwargs
    assert kw["socket_timeout"] == DEFAULT_SOCKET_TIMEOUT
    assert kw["socket_connect_timeout"] > 0
    conn = Connection("redis://127.0.0.1:6379/15?socket_timeout=0.5&socket_connect_timeout=0.25")
    kw = conn.sync.connection_pool.connection_kwargs
    assert (kw["socket_timeout"], kw["socket_connect_timeout"]) == (0.5, 0.25)


def test_emit_raises_within_the_timeout_when_redis_is_frozen(private_redis):
    url, proc = private_redis
    tm = TaskManager.init(db=f"{url}?socket_timeout=1&socket_connect_timeout=1")
    tm.emit("warm-up")  # connected, scripts loaded
    os.kill(proc.pid, signal.SIGSTOP)
    started = time.monotonic()
    with pytest.raises(RedisTimeout, match=r"emit \('ping'\): Redis at .* did not answer in "
                       r"time .* the same options\['id'\]") as caught:
        tm.emit("ping")
    assert time.monotonic() - started < 10  # 1 s timeout; generous for a shared host
    # still what redis-py code catches, with redis-py's error as its cause
    assert isinstance(caught.value, redis.exceptions.TimeoutError)
    assert isinstance(caught.value.__cause__, redis.exceptions.TimeoutError)
    os.kill(proc.pid, signal.SIGCONT)
    tm.conn.close()


async def test_emit_to_a_redis_that_is_down_names_the_fix(private_redis):
    url, proc = private_redis
    tm = TaskManager.init(db=f"{url}?socket_timeout=1&socket_connect_timeout=1")
    tm.emit("warm-up")
    proc.terminate()
    proc.wait(10)
    with pytest.raises(RedisUnavailable, match=r"cannot reach Redis at .* Is it running"):
        tm.emit("ping")
    with pytest.raises(RedisUnavailable, match=r"emit \('ping'\): cannot reach Redis"):
        await tm.aemit("ping")
    with pytest.raises(redis.exceptions.ConnectionError):  # what redis-py code catches
        tm.emit_many([{"event": "ping"}])
    tm.conn.close()
    await tm.conn.aclose()


async def test_a_worker_idle_longer_than_the_socket_timeout_still_works(private_redis):
    url, _ = private_redis
    tm = TaskManager.init(db=f"{url}?socket_timeout=0.3")
    done = asyncio.Event()

    async def work(task, ctx):
        done.set()

    tm.register_handler("work", work)
    server = redis.Redis.from_url(url)
    await tm.start()
    try:
        await asyncio.sleep(1.5)  # the worker's loops have opened their connections
        before = server.info("stats")["total_connections_received"]
        await asyncio.sleep(2.5)  # blocking reads of 1 s each, longer than the 0.3 s timeout
        # a read cut off by the timeout drops its connection (and any entry it was handed)
        assert server.info("stats")["total_connections_received"] - before <= 1
        job_id = await tm.aemit("work")
        await asyncio.wait_for(done.wait(), 10)
        for _ in range(100):
            if Sdk(url).get_job(job_id, "default").status == "completed":
                break
            await asyncio.sleep(0.05)
        assert Sdk(url).get_job(job_id, "default").status == "completed"
    finally:
        await tm.stop()
        tm.conn.close()
        server.close()
