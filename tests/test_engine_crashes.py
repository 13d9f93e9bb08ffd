"""At-least-once under crashes, bad input and Redis going away, on a real Redis."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import redis

from django_remq.core import TaskManager
from django_remq.core.store.keys import Keys

from .cluster import on_both
from .records import record
from .workers import free_port, pings, spawn_worker, stop_worker, wait_until

pytestmark = pytest.mark.processes


@on_both()
def test_sigkilled_worker_loses_nothing(redis_url, r, prefix, make_tm):
    tm: TaskManager = make_tm()
    ids = tm.emit_many({"event": "sleep", "data": {"s": 1.0}} for _ in range(6))
    first = spawn_worker(redis_url, prefix, "--concurrency", "4", "--claim-idle-ms", "1000")
    assert wait_until(lambda: r.llen(f"{prefix}:started") >= 4)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert r.llen(f"{prefix}:finished") == 0  # killed mid-task, holding 4 of them
    second = spawn_worker(redis_url, prefix, "--concurrency", "4", "--claim-idle-ms", "1000")
    try:
        qk = Keys(prefix).queue("default")
        assert wait_until(lambda: r.zcard(qk.status("completed")) == 6, timeout=20)
    finally:
        stop_worker(second)
    assert {job_id: record(r, prefix, job_id).status for job_id in ids} == dict.fromkeys(
        ids, "completed")
    assert set(r.lrange(f"{prefix}:finished", 0, -1)) == set(ids)
    assert r.xlen(qk.stream) == 0


def test_live_worker_keeps_its_long_tasks(redis_url, r, prefix, make_tm):
    """A task running longer than claim_idle_ms is renewed, not stolen by a sibling."""
    tm: TaskManager = make_tm()
    job_id = tm.emit("sleep", data={"s": 2.0})
    a = spawn_worker(redis_url, prefix, "--claim-idle-ms", "600")
    assert wait_until(lambda: r.llen(f"{prefix}:started") == 1)
    b = spawn_worker(redis_url, prefix, "--claim-idle-ms", "600")
    try:
        assert wait_until(lambda: r.llen(f"{prefix}:finished") == 1, timeout=10)
        time.sleep(0.3)
    finally:
        for p in (a, b):
            stop_worker(p)
    assert r.lrange(f"{prefix}:started", 0, -1) == [job_id]  # ran once
    assert record(r, prefix, job_id).status == "completed"


def test_sigterm_lets_the_running_task_finish(redis_url, r, prefix, make_tm):
    tm: TaskManager = make_tm()
    job_id = tm.emit("sleep", data={"s": 0.8})
    worker = spawn_worker(redis_url, prefix)
    assert wait_until(lambda: r.llen(f"{prefix}:started") == 1)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert r.lrange(f"{prefix}:finished", 0, -1) == [job_id]
    assert record(r, prefix, job_id).status == "completed"


def test_shutdown_timeout_hands_unfinished_work_back(redis_url, r, prefix, make_tm):
    tm: TaskManager = make_tm()
    job_id = tm.emit("sleep", data={"s": 1.5})
    worker = spawn_worker(redis_url, prefix, "--shutdown-timeout-ms", "200",
                          "--claim-idle-ms", "15000")
    assert wait_until(lambda: r.llen(f"{prefix}:started") == 1)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert r.llen(f"{prefix}:finished") == 0
    # handed back at once: a new worker takes it without waiting claim_idle_ms (15 s); timed
    # from its READY, so a slow start on a busy host counts for neither side
    again = spawn_worker(redis_url, prefix, "--claim-idle-ms", "15000")
    t0 = time.monotonic()
    try:
        assert wait_until(lambda: r.llen(f"{prefix}:finished") == 1, timeout=20)
    finally:
        stop_worker(again)
    assert time.monotonic() - t0 < 6
    assert record(r, prefix, job_id).status == "completed"


def test_task_that_kills_every_worker_ends_failed(redis_url, r, prefix, make_tm):
    tm: TaskManager = make_tm()
    job_id = tm.emit("die")
    qk = Keys(prefix).queue("default")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and r.hget(qk.job(job_id), "status") != "failed":
        worker = spawn_worker(redis_url, prefix, "--claim-idle-ms", "300",
                              "--max-deliveries", "2")
        try:
            worker.wait(3)
        except subprocess.TimeoutExpired:  # it handled nothing deadly this round
            stop_worker(worker)
    job = record(r, prefix, job_id)
    assert job.status == "failed"
    assert job.errors[-1].type == "PoisonMessage"
    assert "max_deliveries=2" in job.errors[-1].message
    assert r.xlen(qk.stream) == 0


async def test_malformed_entry_is_recorded_and_processing_goes_on(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    ran = []

    async def fine(task, ctx):
        ran.append(task.id)

    tm.register_handler(event="fine", handler=fine)
    qk = Keys(prefix).queue("default")
    tm.emit("fine")  # creates the stream
    bad_entry = r.xadd(qk.stream, {"garbage": "yes", "name": "oops"})
    good = tm.emit("fine")
    await tm.run(burst=True)
    assert good in ran
    bad = record(r, prefix, f"malformed-{bad_entry}")
    assert bad.status == "failed"
    assert bad.errors[0].type == "MalformedMessage"
    assert "no 'id' field" in bad.errors[0].message
    assert bad.state.data == {"garbage": "yes", "name": "oops"}  # nothing lost
    assert r.xlen(qk.stream) == 0


async def test_corrupt_record_fails_the_job_not_the_worker(make_tm, r, prefix):
    tm: TaskManager = make_tm()
    ran = []
    tm.register_handler(event="fine", handler=lambda task, ctx: ran.append(task.id))
    qk = Keys(prefix).queue("default")
    broken = tm.emit("fine")
    r.hset(qk.job(broken), "data", "{not json")
    r.xadd(qk.stream, {"id": broken})
    r.hset(qk.job(broken), "status", "waiting")
    good = tm.emit("fine")
    await tm.run(burst=True)
    assert good in ran
    assert r.hget(qk.job(broken), "status") == "failed"
    assert "corrupt record" in r.hget(qk.job(broken), "errors")
    assert r.hget(qk.job(broken), "data") == "{not json"  # kept as found, for inspection


async def test_scripts_reload_after_script_flush(private_redis_url, prefix):
    r = redis.Redis.from_url(private_redis_url, decode_responses=True)
    tm = TaskManager.init(db=private_redis_url, prefix=prefix)
    tm.register_handler(event="x", handler=lambda task, ctx: "ok")
    r.script_flush()
    job_id = tm.emit("x")
    r.script_flush()
    await tm.run(burst=True)
    assert record(r, prefix, job_id).result == "ok"
    tm.conn.close()


@pytest.fixture
def own_redis():
    """A private redis-server (AOF on) that a test may stop and start again."""
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
           "--appendonly", "yes", "--appendfsync", "always", "--save", ""]

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=port)
        assert wait_until(lambda: pings(client), timeout=10)
        return proc

    server = {"proc": start()}
    yield f"redis://127.0.0.1:{port}/0", server, start
    server["proc"].terminate()
    server["proc"].wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


async def test_worker_survives_redis_going_away(own_redis):
    url, server, start = own_redis
    tm = TaskManager.init(db=url, prefix="down")
    done: list[str] = []

    async def job(task, ctx):
        done.append(task.data)

    tm.register_handler(event="job", handler=job)
    tm.emit("job", data="before", options={"delay_ms": 1200})
    stop = asyncio.Event()
    runner = asyncio.create_task(tm.run(stop_event=stop))
    await asyncio.sleep(0.3)
    server["proc"].terminate()  # graceful: the AOF keeps what was emitted
    server["proc"].wait(10)
    await asyncio.sleep(1.5)  # the worker backs off and retries meanwhile
    server["proc"] = start()
    tm.emit("job", data="after")
    for _ in range(100):
        if len(done) == 2:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await runner
    assert sorted(done) == ["after", "before"]
