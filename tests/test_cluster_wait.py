"""WAIT_REPLICAS on the local Redis Cluster: each WAIT goes to the master that took the
writes, on their connection, and a paused replica makes it come short.

The replica is paused with ``CLIENT PAUSE ... WRITE`` on it: it stops applying (and
acknowledging) its master's stream until unpaused, and stays a healthy cluster node.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from django_remq.conf import problems
from django_remq.core import ReplicaTimeout, TaskManager
from django_remq.core.store.keys import Keys
from django_remq.core.store.replicas import ReplicaWait
from django_remq.core.store.scripts import Cmd, arun_many, run_many

from .cluster import slot_nodes

pytestmark = pytest.mark.cluster

#: Run on the cluster only (``r``, ``prefix``, ``make_tm`` then use it).
on_cluster_only = pytest.mark.parametrize("redis_url", ["cluster"], indirect=True)
QUEUES = ("alpha", "default", "beta")  # slots 865, 5718, 15419: one per master


def node(port: int) -> redis.Redis:
    return redis.Redis(port=port, decode_responses=True)


def waits_by_master(redis_url: str) -> dict[int, int]:
    """WAIT calls each master has served so far."""
    masters = {slot_nodes(redis_url, f"x:{{{q}}}")[0] for q in QUEUES}
    counts = {}
    for port in masters:
        client = node(port)
        counts[port] = int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))
        client.close()
    return counts


def on_replica(redis_url: str, key: str, field: str) -> Any:
    """``HGET`` on the replica of ``key``'s master, read there (READONLY)."""
    client = node(slot_nodes(redis_url, key)[1])
    try:
        client.execute_command("READONLY")
        return client.hget(key, field)
    finally:
        client.close()


@contextmanager
def replica_paused(redis_url: str, key: str, ms: int) -> Iterator[redis.Redis]:
    """The replica of ``key``'s master applies nothing for ``ms`` (or until the end);
    yields that master."""
    master_port, replica_port = slot_nodes(redis_url, key)[:2]
    replica, master = node(replica_port), node(master_port)
    replica.execute_command("CLIENT", "PAUSE", ms, "WRITE")
    try:
        yield master
    finally:
        replica.execute_command("CLIENT", "UNPAUSE")
        replica.close()
        master.close()


@contextmanager
def cluster_down(redis_url: str, key: str, seconds: float) -> Iterator[None]:
    """``key``'s master answers CLUSTERDOWN for ``seconds``, as a restarted master does
    until it has heard the cluster: it gives up a slot of its own (so the cluster no
    longer covers every slot) and takes it back."""
    master = node(slot_nodes(redis_url, key)[0])
    port = master.connection_pool.connection_kwargs["port"]
    mine = int(master.cluster("KEYSLOT", key))
    spare = next(int(start) + (int(start) == mine) for start, _, owner, *_
                 in master.cluster("SLOTS") if int(owner[1]) == port)
    given_back = threading.Event()

    def give_back() -> None:
        master.execute_command("CLUSTER", "ADDSLOTS", spare)
        given_back.set()

    master.execute_command("CLUSTER", "DELSLOTS", spare)
    timer = threading.Timer(seconds, give_back)
    try:
        # a ClusterDownError; redis-py 5.x's plain client raises a plain ResponseError
        with pytest.raises(redis.exceptions.ResponseError, match="cluster is down"):
            master.exists(key)
        timer.start()
        yield
    finally:
        timer.cancel()
        if timer.is_alive():
            timer.join()
        if not given_back.is_set():
            give_back()
        master.close()


@on_cluster_only
async def test_a_wait_step_goes_to_the_master_that_took_the_write(r, prefix, redis_url):
    key = f"{prefix}:{{default}}:probe"
    before = waits_by_master(redis_url)
    steps = [Cmd(("SET", key, "1")), ReplicaWait(1, 5000).step()]
    assert run_many(r, steps) == [True, 1]  # the replica has it
    async_client = redis.asyncio.RedisCluster.from_url(redis_url, decode_responses=True)
    try:
        assert await arun_many(async_client, steps) == [True, 1]  # type: ignore[arg-type]
    finally:
        await async_client.aclose()
    master = slot_nodes(redis_url, key)[0]
    after = waits_by_master(redis_url)
    assert {p: after[p] - before[p] for p in after} == {p: 2 if p == master else 0
                                                       for p in after}
    replica = node(slot_nodes(redis_url, key)[1])
    replica.execute_command("READONLY")
    assert replica.get(key) == "1"
    replica.close()


@on_cluster_only
async def test_emit_waits_for_the_replica_of_its_queues_master(make_tm, prefix, redis_url):
    tm: TaskManager = make_tm(wait_replicas=1, wait_timeout_ms=3000)
    for queue in QUEUES:  # the queue registry's write (its own slot) out of the way
        tm.emit("e", queue=queue)
    for queue in QUEUES:
        qk = Keys(prefix).queue(queue)
        master = slot_nodes(redis_url, qk.stream)[0]
        before = waits_by_master(redis_url)
        job_id = tm.emit("e", queue=queue) if queue != "beta" else await tm.aemit("e",
                                                                                   queue=queue)
        after = waits_by_master(redis_url)
        assert {p: after[p] - before[p] for p in after} == {p: int(p == master)
                                                           for p in after}, queue
        assert on_replica(redis_url, qk.job(job_id), "status") == "waiting"
    before = waits_by_master(redis_url)  # one batch over three masters: a WAIT on each
    ids = tm.emit_many([{"event": "e", "queue": q, "data": n} for n in range(30)
                        for q in QUEUES])
    after = waits_by_master(redis_url)
    assert all(after[p] - before[p] == 1 for p in after)
    assert all(on_replica(redis_url, Keys(prefix).queue(QUEUES[n % 3]).job(job_id), "name")
               == "e" for n, job_id in enumerate(ids))


@on_cluster_only
async def test_a_paused_replica_makes_emit_raise_replica_timeout(make_tm, prefix, redis_url):
    tm: TaskManager = make_tm(wait_replicas=1, wait_timeout_ms=300)
    patient: TaskManager = make_tm(wait_replicas=1, wait_timeout_ms=3000)  # not to time out
    for queue in ("alpha", "default"):
        patient.emit("e", queue=queue)
    qk = Keys(prefix).queue("default")
    with replica_paused(redis_url, qk.stream, 5000) as master:
        started = time.monotonic()
        with pytest.raises(ReplicaTimeout, match=r"only 0 of 1 replicas confirmed") as err:
            tm.emit("e", options={"id": "late"})
        assert time.monotonic() - started < 3  # the WAIT timeout (0.3 s), not the pause
        assert err.value.confirmed == 0
        assert master.hget(qk.job("late"), "status") == "waiting"  # written on the master
        with pytest.raises(ReplicaTimeout):
            await tm.aemit("e", options={"id": "late-too"})
        assert patient.emit("e", queue="alpha")  # another master's replica is not paused
    assert patient.emit("e", options={"id": "on-time"}) == "on-time"


@on_cluster_only
async def test_emit_rides_out_a_master_that_says_the_cluster_is_down(make_tm, prefix,
                                                                     redis_url):
    """The node-by-node round trip waits and asks again, as redis-py's cluster client
    does for the commands it sends itself (a failover test caught a restarted master
    saying so to a client whose slot map still named it)."""
    tm: TaskManager = make_tm(wait_replicas=1, wait_timeout_ms=3000)
    tm.emit("e")  # the queue registry's write (another slot) out of the way
    qk = Keys(prefix).queue("default")
    with cluster_down(redis_url, qk.stream, 0.4):
        started = time.monotonic()
        assert tm.emit("e", options={"id": "sync"}) == "sync"
        took = [time.monotonic() - started]
    with cluster_down(redis_url, qk.stream, 0.4):
        started = time.monotonic()
        assert await tm.aemit("e", options={"id": "async"}) == "async"
        took.append(time.monotonic() - started)
    assert min(took) >= 0.35  # it did meet the outage, and waited it out
    for job_id in ("sync", "async"):
        assert on_replica(redis_url, qk.job(job_id), "status") == "waiting"


def test_wait_replicas_with_cluster_passes_the_checks():
    assert problems({"WAIT_REPLICAS": 1, "CLUSTER": True}) == []


@on_cluster_only
async def test_acknowledgements_wait_for_the_replica_of_the_queues_master(
        make_tm, prefix, redis_url, caplog):
    caplog.set_level(logging.INFO, logger="django_remq.replicas")
    finished: list[str] = []

    def sink(event: dict[str, Any]) -> None:
        if event.get("type") == "task_finished":
            finished.append(event["taskId"])

    tm: TaskManager = make_tm(wait_replicas=1, wait_timeout_ms=300, expose=sink)  # acks retry
    tm.register_handler("e", lambda task, ctx: "done")
    qk = Keys(prefix).queue("default")
    first = make_tm(wait_replicas=1, wait_timeout_ms=3000).emit("e")  # must not time out
    await tm.run(burst=True)
    assert on_replica(redis_url, qk.job(first), "status") == "completed"
    assert finished == [first]
    plain: TaskManager = make_tm()
    second = plain.emit("e")
    with replica_paused(redis_url, qk.stream, 20_000) as master:
        stop = asyncio.Event()
        runner = asyncio.create_task(tm.run(stop_event=stop))
        for _ in range(200):  # done on the master; its acknowledgement waits
            if "acknowledging 1 finished jobs: only 0 of 1" in caplog.text:
                break
            await asyncio.sleep(0.05)
        assert master.hget(qk.job(second), "status") == "completed"
        await asyncio.sleep(1.5)  # ROLE asked again meanwhile: still short
        assert finished == [first]  # not reported while the replica lacks it
    for _ in range(200):
        if finished == [first, second]:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await runner
    assert finished == [first, second]
    assert "1 of 1 replicas have it now" in caplog.text
    assert on_replica(redis_url, qk.job(second), "status") == "completed"
