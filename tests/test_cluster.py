"""REMQ["CLUSTER"]: settings, the clients every layer gets, and what a cluster still breaks.

The engine and Sdk tests marked ``@on_both()`` elsewhere run the same assertions on
the local cluster (:mod:`tests.cluster`); this file covers the setting itself, the
Django layer on a cluster, and the known gaps as strict xfails.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
import warnings
from io import StringIO
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster
from django.core.management import call_command
from django.test import override_settings

from django_remq.api import build_task_manager
from django_remq.checks import check_settings
from django_remq.conf import get_settings
from django_remq.core import TaskManager
from django_remq.core.store.connection import Connection
from django_remq.sdk import Sdk
from django_remq.worker import RedisUnavailable, probe_redis

from .cluster import free_ports, on_both
from .workers import wait_until

pytestmark = pytest.mark.redis


def check_ids(remq: dict[str, Any]) -> list[str]:
    with override_settings(REMQ=remq):
        return [m.id for m in check_settings()]


def test_cluster_setting_is_checked() -> None:
    assert check_ids({"CLUSTER": True, "REDIS_URL": "redis://node-1:7000/0"}) == []
    assert check_ids({"CLUSTER": True, "REDIS_URL": "redis://node-1:7000"}) == []
    assert check_ids({"CLUSTER": "yes"}) == ["remq.E003"]
    assert check_ids({"CLUSTER": True, "REDIS_URL": "redis://node-1:7000/3"}) == ["remq.E030"]
    assert check_ids({"CLUSTER": True, "REDIS_URL": "unix:///run/redis.sock"}) == ["remq.E030"]
    with override_settings(REMQ={"CLUSTER": True, "REDIS_URL": "redis://node-1:7000/3"}):
        [problem] = check_settings()
        assert "only database 0" in problem.msg
        assert "PREFIX" in (problem.hint or "")
    with override_settings(REMQ={"CLUSTER": True, "REDIS_URL": "redis://n:7000/0"}):
        assert get_settings().cluster is True
    with override_settings(REMQ={}):
        assert get_settings().cluster is False


def test_cluster_flag_takes_a_url_or_a_cluster_client() -> None:
    with pytest.raises(TypeError, match="RedisCluster client"):
        Connection(redis.Redis(), cluster=True)
    assert "cluster" in repr(Connection("redis://127.0.0.1:7000/0", cluster=True))


async def test_the_django_layer_sdk_and_cli_use_the_cluster(cluster_url, prefix):
    remq = {"REDIS_URL": cluster_url, "CLUSTER": True, "PREFIX": prefix}
    with override_settings(REMQ=remq):
        tm = build_task_manager()
        assert tm.conn.cluster
        assert isinstance(tm.conn.sync, redis.cluster.RedisCluster)
        done: list[str] = []

        async def work(task: Any, ctx: Any) -> None:
            done.append(task.queue)

        queues = ("alpha", "default", "beta")  # slots 865, 5718, 15419: one per master
        for queue in queues:
            tm.register_handler("work", work, queue=queue)
            tm.emit("work", queue=queue)
        for queue in queues:
            await tm.run([queue], burst=True)
        assert sorted(done) == sorted(queues)
        sdk = Sdk()
        assert sdk.conn.cluster
        info = {i.name: i.stats.completed for i in sdk.get_queues_info()}
        assert info == {"alpha": 1, "default": 1, "beta": 1}
        out = StringIO()
        call_command("remq", "queues", "--json", stdout=out)
        assert {q["name"]: q["stats"]["completed"] for q in json.loads(out.getvalue())} == info
        probe_redis(cluster_url, cluster=True)
        tm.conn.close()


async def test_a_cluster_client_can_be_given_instead_of_a_url(cluster_url, prefix):
    client = redis.cluster.RedisCluster.from_url(cluster_url)  # bytes replies
    tm = TaskManager.init(db=client, prefix=prefix)
    assert tm.conn.cluster
    tm.register_handler("e", lambda task, ctx: task.data + 1)
    job_id = await tm.aemit("e", data=1)  # the asyncio twin is made from the client's node
    await tm.run(burst=True)
    job = Sdk(client, prefix=prefix).get_job(job_id, "default")
    assert job is not None
    assert (job.status, job.result) == ("completed", 2)
    await tm.conn.aclose()
    client.close()


@pytest.mark.parametrize(("query", "read_timeout"), [("", 5.0 + 2.5), ("?socket_timeout=1", 3.5)])
async def test_the_blocking_read_client_is_a_cluster_client_that_waits_out_the_block(
        cluster_url, query, read_timeout):
    """The worker's blocking XREADGROUP goes through conn.blocking(): on a cluster it must
    route by slot like every other client and wait the block on top of the read timeout
    (the URL's own timeout, when it gives one)."""
    conn = Connection(cluster_url + query, cluster=True)
    client = conn.blocking(2500)
    try:
        assert isinstance(client, redis.asyncio.cluster.RedisCluster)
        assert await client.ping() is True
        node = client.get_node_from_key("remq:{q}:stream")
        assert node is not None
        assert node.connection_kwargs["socket_timeout"] == read_timeout
        assert conn.blocking(2500) is client
    finally:
        await conn.aclose()


def test_probe_names_an_unreachable_cluster() -> None:
    [port] = free_ports(1)
    with pytest.raises(RedisUnavailable, match=f"127.0.0.1:{port}"):
        probe_redis(f"redis://127.0.0.1:{port}/0", timeout=0.5, cluster=True)


@on_both()
async def test_a_worker_serving_several_queues_reads_them_without_errors(make_tm, prefix,
                                                                         caplog):
    """On a cluster the three queues sit in three slots, which no one read may span: the
    worker blocks on each at once and wakes the others when one has work."""
    tm: TaskManager = make_tm(concurrency=4)  # free slots for all three: one read of all
    done: list[str] = []

    async def work(task: Any, ctx: Any) -> None:
        done.append(task.queue)

    queues = ["alpha", "beta", "gamma"]
    for queue in queues:
        tm.register_handler("work", work, queue=queue)
    caplog.set_level(logging.WARNING, logger="django_remq")
    await tm.start(queues)
    try:
        await asyncio.sleep(1.5)  # idle: the worker now waits in its blocking read
        for queue in queues:
            await tm.aemit("work", queue=queue)
        for _ in range(200):
            if len(done) == 3:
                break
            await asyncio.sleep(0.05)
    finally:
        await tm.stop()
    assert sorted(done) == queues
    problems = [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and r.name.startswith("django_remq")]
    assert problems == []


@on_both()
async def test_work_in_one_of_several_queues_does_not_wait_out_the_others_block(make_tm):
    """With a 6 s block, a job in one queue runs long before the other queues' reads would
    time out: the first read to return ends the rest (CLIENT UNBLOCK on a cluster)."""
    tm: TaskManager = make_tm(concurrency=4)
    started: list[float] = []

    async def work(task: Any, ctx: Any) -> None:
        started.append(time.monotonic())

    queues = ["alpha", "beta", "gamma"]
    for queue in queues:
        tm.register_handler("work", work, queue=queue)
    await tm.start(queues)
    assert tm.processor is not None
    tm.processor.consumer.reader.block_ms = 6000
    try:
        await asyncio.sleep(1.5)  # idle: every queue's read is blocked, for 6 s
        for round_ in range(3):  # the same again after a wake-up: the reads block anew
            sent = time.monotonic()
            await tm.aemit("work", queue=queues[round_])
            for _ in range(120):
                if len(started) > round_:
                    break
                await asyncio.sleep(0.05)
            assert len(started) == round_ + 1
            assert started[round_] - sent < 3.0  # half the block; typically milliseconds
            await asyncio.sleep(0.5)
    finally:
        await tm.stop()


async def test_the_async_cluster_client_applies_each_command_once(cluster_url, prefix):
    """64 concurrent HINCRBYs on one hash, as a worker's handlers and acks would, on a
    fresh client (redis-py 7.1-7.4 double-applied some before Connection initialised it)."""
    conn = Connection(cluster_url, cluster=True)
    client = conn.aio
    key = f"{prefix}:{{q}}:runs"
    gate = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with gate:
            await client.hincrby(key, str(i), 1)

    try:
        results = await asyncio.gather(*(one(i) for i in range(3000)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        counts = [int(v) for v in (await client.hgetall(key)).values()]
    finally:
        await client.delete(key)
        await conn.aclose()
    assert errors == []
    assert (len(counts), sum(counts)) == (3000, 3000)


async def test_concurrent_first_use_of_the_async_cluster_client(cluster_url, prefix):
    """200 aemits at once as the first thing a process does (an ASGI app's first burst)."""
    tm = TaskManager.init(db=cluster_url, prefix=prefix, cluster=True)
    await tm.aemit("warm-registry")  # the queue registry write; not the race under test
    await tm.conn.aclose()
    results = await asyncio.gather(*(tm.aemit("e", data=i, options={"id": f"job-{i}"})
                                     for i in range(200)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    sdk = Sdk(cluster_url, prefix=prefix, cluster=True)
    waiting = sdk.get_queue_stats("default").waiting
    await tm.conn.aclose()
    sdk.conn.close()
    assert errors == []
    assert waiting == 201


def test_close_closes_every_client_the_connection_made(cluster_url) -> None:
    """Connection.close(): the sync client and each event loop's asyncio clients (the
    per-loop one, the blocking one, the per-slot pinned one), whether their loop has
    ended (closed with it), is idle, or runs on another thread. Counted on the servers,
    and no "Unclosed ..." ResourceWarning when the connection is collected."""
    probe = redis.Redis.from_url(cluster_url, decode_responses=True)
    nodes = [redis.Redis(host="127.0.0.1", port=int(line.split()[1].split(":")[1].split("@")[0]))
             for line in probe.execute_command("CLUSTER", "NODES").splitlines()]
    probe.close()

    def open_clients() -> int:
        return sum(int(node.info("clients")["connected_clients"]) for node in nodes)

    key = "close-test:{q}"
    conn = Connection(cluster_url, cluster=True)

    async def use(conn: Connection) -> None:
        await conn.aio.set(key, 1)
        assert await conn.blocking(1000).get(key) == b"1"  # it does not decode
        pinned, _ = await conn.pinned(key, 1000)
        assert await pinned.ping()

    gc.collect()
    baseline = open_clients()
    asyncio.run(use(conn))  # a loop that ends before close()
    idle = asyncio.new_event_loop()
    idle.run_until_complete(use(conn))  # a loop still there, not running
    elsewhere = asyncio.new_event_loop()
    thread = threading.Thread(target=elsewhere.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(use(conn), elsewhere).result(10)
    assert conn.sync.get(key) == "1"
    assert open_clients() > baseline
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        conn.close()
        elsewhere.call_soon_threadsafe(elsewhere.stop)
        thread.join(10)
        elsewhere.close()
        idle.close()
        del conn
        gc.collect()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert unclosed == []
    assert wait_until(lambda: open_clients() <= baseline, timeout=5), (open_clients(), baseline)
    redis.cluster.RedisCluster.from_url(cluster_url).delete(key)
    for node in nodes:
        node.close()


async def test_close_from_a_running_loop_closes_an_idle_loops_clients(cluster_url) -> None:
    """close() called where another loop runs (an async test, Playwright's sync API):
    run_until_complete refuses there, so the idle loop's clients close from a helper
    thread."""
    conn = Connection(cluster_url, cluster=True)
    idle = asyncio.new_event_loop()

    async def use(conn: Connection) -> None:
        assert await conn.aio.set("close-test:{q}", 1)

    await asyncio.to_thread(idle.run_until_complete, use(conn))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        conn.close()
        idle.close()
        del conn
        gc.collect()
    assert [str(w.message) for w in caught
            if issubclass(w.category, ResourceWarning | RuntimeWarning)] == []
