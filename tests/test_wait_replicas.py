"""WAIT_REPLICAS on a private master + replica: an emit returns once the replica has the
job (or raises ReplicaTimeout), and a worker's acknowledgements wait for it too."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from django_remq.conf import problems
from django_remq.core import InvalidOptions, ReplicaTimeout, TaskManager
from django_remq.core.store.keys import Keys

from .workers import free_port, pings, wait_until

pytestmark = pytest.mark.cluster


@dataclass
class Pair:
    """A master and its replica, each a private redis-server on a free port."""

    master_url: str
    master: redis.Redis
    replica: redis.Redis
    start_replica: Callable[[], None]
    stop_replica: Callable[[], None]


def _server(port: int, workdir: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", workdir, "--save", "", "--appendonly", "no", *extra],
                            stdout=subprocess.DEVNULL)


def _linked(master: redis.Redis) -> bool:
    info = master.info("replication")
    return info.get("connected_slaves") == 1 and info.get("slave0", {}).get("state") == "online"


@pytest.fixture
def pair() -> Iterator[Pair]:
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    mport, rport = free_port(), free_port()
    workdir = tempfile.mkdtemp()
    # the replica syncs at once, not after the default 5 s diskless delay
    procs: dict[str, subprocess.Popen[bytes]] = {
        "master": _server(mport, workdir, "--repl-diskless-sync-delay", "0")}
    master = redis.Redis(port=mport, decode_responses=True)
    replica = redis.Redis(port=rport, decode_responses=True)
    assert wait_until(lambda: pings(master), timeout=10)

    def start_replica() -> None:
        procs["replica"] = _server(rport, workdir, "--replicaof", "127.0.0.1", str(mport),
                                   "--dbfilename", "replica.rdb")
        assert wait_until(lambda: _linked(master), timeout=20), master.info("replication")
        # "online" can come before the replica has loaded the sync and answers GETACK
        assert master.execute_command("WAIT", 1, 20_000) == 1, master.info("replication")

    def stop_replica() -> None:
        procs["replica"].terminate()
        procs["replica"].wait(10)
        assert wait_until(lambda: master.info("replication")["connected_slaves"] == 0,
                          timeout=10)

    start_replica()
    yield Pair(f"redis://127.0.0.1:{mport}/0", master, replica, start_replica, stop_replica)
    for proc in procs.values():
        proc.terminate()
        proc.wait(10)
    master.close()
    replica.close()
    shutil.rmtree(workdir, ignore_errors=True)


def test_emit_returns_once_the_replica_has_the_job(pair):
    tm = TaskManager.init(db=pair.master_url, prefix="w", wait_replicas=1, wait_timeout_ms=5000)
    job_id = tm.emit("e", data={"n": 1})
    qk = Keys("w").queue("default")
    assert pair.replica.hget(qk.job(job_id), "status") == "waiting"  # no waiting here
    ids = tm.emit_many([{"event": "e", "data": n} for n in range(50)])
    assert all(pair.replica.exists(qk.job(i)) for i in ids)
    tm.conn.close()


async def test_aemit_waits_too_and_raises_when_the_replica_is_gone(pair):
    patient = TaskManager.init(db=pair.master_url, prefix="w", wait_replicas=1,
                               wait_timeout_ms=5000)  # a loaded CI host can take > 0.3 s
    job_id = await patient.aemit("e")
    assert pair.replica.exists(Keys("w").queue("default").job(job_id))
    tm = TaskManager.init(db=pair.master_url, prefix="w", wait_replicas=1, wait_timeout_ms=300)
    pair.stop_replica()
    started = time.monotonic()
    shown = r"only 0 of 1 replicas confirmed job\(s\) lost"
    with pytest.raises(ReplicaTimeout, match=shown) as err:
        await tm.aemit("e", options={"id": "lost"})
    assert time.monotonic() - started < 5  # the WAIT timeout (0.3 s), not a hang
    assert err.value.confirmed == 0
    assert "ARE written on the master" in str(err.value)
    assert pair.master.hget(Keys("w").queue("default").job("lost"), "status") == "waiting"
    with pytest.raises(ReplicaTimeout):
        tm.emit("e")
    plain = TaskManager.init(db=pair.master_url, prefix="w")  # the default: no waiting
    plain.emit("e")
    tm.conn.close()
    patient.conn.close()
    plain.conn.close()


async def test_worker_acknowledgements_wait_for_the_replica(pair, caplog):
    caplog.set_level(logging.INFO, logger="django_remq.replicas")
    qk = Keys("w").queue("default")
    finished: list[str] = []

    def sink(event):
        if event.get("type") == "task_finished":
            finished.append(event["taskId"])

    tm = TaskManager.init(db=pair.master_url, prefix="w", wait_replicas=1,
                          wait_timeout_ms=300, expose=sink)  # short: its acks retry
    tm.register_handler("e", lambda task, ctx: "done")
    # an emit that must succeed gets time: a loaded CI host can take > 0.3 s to confirm
    patient = TaskManager.init(db=pair.master_url, prefix="w", wait_replicas=1,
                               wait_timeout_ms=5000)
    first = patient.emit("e")
    patient.conn.close()
    await tm.run(burst=True)  # returns once its acknowledgements are written and replicated
    assert pair.replica.hget(qk.job(first), "status") == "completed"
    assert finished == [first]

    pair.stop_replica()
    plain = TaskManager.init(db=pair.master_url, prefix="w")
    second = plain.emit("e")
    stop = asyncio.Event()
    runner = asyncio.create_task(tm.run(stop_event=stop))
    for _ in range(200):  # the job is done on the master; its acknowledgement waits
        if "acknowledging 1 finished jobs: only 0 of 1" in caplog.text:
            break
        await asyncio.sleep(0.05)
    assert pair.master.hget(qk.job(second), "status") == "completed"
    assert finished == [first]  # not reported finished while no replica has it
    await asyncio.to_thread(pair.start_replica)
    for _ in range(200):
        if finished == [first, second]:
            break
        await asyncio.sleep(0.05)
    assert finished == [first, second]
    assert "1 of 1 replicas have it now" in caplog.text
    assert pair.replica.hget(qk.job(second), "status") == "completed"
    stop.set()
    await runner
    tm.conn.close()
    plain.conn.close()


def test_wait_settings_are_checked():
    with pytest.raises(InvalidOptions, match="wait_replicas must be an int >= 0"):
        TaskManager.init(db="redis://127.0.0.1:1/0", wait_replicas=-1)
    with pytest.raises(InvalidOptions, match="WAIT 0 would block forever"):
        TaskManager.init(db="redis://127.0.0.1:1/0", wait_replicas=1, wait_timeout_ms=0)
    assert problems({"WAIT_REPLICAS": 1}) == []
    [bad] = problems({"WAIT_REPLICAS": -2})
    assert (bad.id, "wait_replicas must be" in bad.msg) == ("remq.E040", True)
    [slow] = problems({"WAIT_REPLICAS": 1, "WAIT_TIMEOUT_MS": 9000, "SOCKET_TIMEOUT": 5})
    assert slow.id == "remq.E040"
    assert "SOCKET_TIMEOUT" in slow.msg
    [typed] = problems({"WAIT_REPLICAS": True})
    assert typed.id == "remq.E003"
