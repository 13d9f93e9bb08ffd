"""The Line: each thread's own connection for lone script calls (``emit`` one at a time)."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import redis

from django_remq.core import TaskManager
from django_remq.core.store.line import Line

from .line_proxy import CuttingProxy
from .workers import wait_until

pytestmark = pytest.mark.redis


def _line_clients(r: redis.Redis, name: str) -> list[dict[str, str]]:
    return [c for c in r.client_list() if c.get("name") == name]


def _emit_on_line(redis_url: str, prefix: str, name: str) -> TaskManager:
    """A manager whose connections carry ``name`` (CLIENT LIST shows which are the Line's)."""
    return TaskManager.init(db=f"{redis_url}?client_name={name}", prefix=prefix)


def test_threads_emit_over_connections_of_their_own(redis_url: str, prefix: str,
                                                    r: redis.Redis) -> None:
    tm = _emit_on_line(redis_url, prefix, f"{prefix}-line")
    assert tm.conn.line is not None
    ids: list[str] = []
    lock = threading.Lock()

    def emit_many() -> None:
        for i in range(50):
            job_id = tm.emit("noop", data={"i": i})
            with lock:
                ids.append(job_id)

    tm.emit("noop")  # the first emit registers the queue (a pipeline, on the pool)
    pooled = {c["id"] for c in _line_clients(r, f"{prefix}-line")}
    for _ in range(2):  # short-lived threads: the second round reuses the first's connections
        threads = [threading.Thread(target=emit_many) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(set(ids)) == 600
    assert r.xlen(tm.keys.queue("default").stream) == 601
    line_conns = [c for c in _line_clients(r, f"{prefix}-line") if c["id"] not in pooled]
    assert 1 <= len(line_conns) <= 6  # at most one per thread at once, kept for reuse
    assert all(c["cmd"] == "evalsha" for c in line_conns)
    tm.conn.close()  # the server sees the sockets close a moment later
    assert wait_until(lambda: _line_clients(r, f"{prefix}-line") == [], timeout=5)


def test_a_killed_connection_is_replaced_and_the_emit_sent_again(redis_url: str, prefix: str,
                                                                 r: redis.Redis) -> None:
    tm = _emit_on_line(redis_url, prefix, f"{prefix}-kill")
    tm.emit("noop")  # the first emit registers the queue (a pipeline, on the pool)
    pooled = {c["id"] for c in _line_clients(r, f"{prefix}-kill")}
    tm.emit("noop")
    [client] = [c for c in _line_clients(r, f"{prefix}-kill") if c["id"] not in pooled]
    r.client_kill_filter(_id=client["id"])
    job_id = tm.emit("noop", data={"after": "kill"})
    assert r.hget(tm.keys.queue("default").job(job_id), "status") == "waiting"
    [again] = [c for c in _line_clients(r, f"{prefix}-kill") if c["id"] not in pooled]
    assert again["id"] != client["id"]
    tm.conn.close()


def test_scripts_lost_by_redis_are_loaded_again(private_redis_url: str, prefix: str) -> None:
    r = redis.Redis.from_url(private_redis_url, decode_responses=True)
    tm = _emit_on_line(private_redis_url, prefix, f"{prefix}-flush")
    tm.emit("noop")
    r.script_flush()
    job_id = tm.emit("noop", data={"after": "flush"})
    assert r.hget(tm.keys.queue("default").job(job_id), "data") == '{"after":"flush"}'
    tm.conn.close()


FORK = """
import os, sys
from django_remq.core import TaskManager
tm = TaskManager.init(db=sys.argv[1], prefix=sys.argv[2])
first = tm.emit("noop")  # the parent's connection exists before the fork
parent = tm.conn.line.execute_command("CLIENT", "ID")
pid = os.fork()
if pid == 0:  # the child: emit on a connection of its own, then leave at once
    code = 1
    try:
        tm.emit("noop", data={"from": "child"})
        code = 0 if tm.conn.line.execute_command("CLIENT", "ID") != parent else 2
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, f"child: {os.waitstatus_to_exitcode(status)}"
# the parent's connection still works (the child did not use or close it)
assert tm.emit("noop", data={"from": "parent"}) != first
assert tm.conn.line._pid == os.getpid()
print("OK")
"""


def test_a_forked_child_makes_its_own_connection(redis_url: str, prefix: str,
                                                 r: redis.Redis) -> None:
    # in a fresh interpreter: forking this (multi-threaded) test process could deadlock
    done = subprocess.run([sys.executable, "-c", FORK, redis_url, prefix],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "OK", done.stderr
    assert r.xlen(f"{prefix}:{{default}}:stream") == 3


def test_the_line_answers_as_the_client_does(redis_url: str, r: redis.Redis,
                                             prefix: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    line = Line(client)
    script = "return {KEYS[1], ARGV[1], 3}"
    sha = r.script_load(script)
    key = f"{prefix}:k"
    assert line.execute_command("EVALSHA", sha, 1, key, "v") == client.evalsha(sha, 1, key, "v")
    line.close()
    client.close()


def test_pools_that_know_how_to_connect_keep_their_own_way(redis_url: str) -> None:
    """A Sentinel (or any custom) pool decides where a connection goes: no Line beside it."""
    from redis.sentinel import Sentinel, SentinelConnectionPool

    from django_remq.core.store.connection import Connection

    assert Connection(redis_url).line is not None
    pool = SentinelConnectionPool("mymaster", Sentinel([("127.0.0.1", 1)]))
    assert Connection(redis.Redis(connection_pool=pool)).line is None


COUNT = "return redis.call('INCR', KEYS[1])"


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_reply_lost_mid_call_is_sent_again_only_when_safe(
        redis_url: str, prefix: str, r: redis.Redis, idempotent: bool) -> None:
    """As for the AioLine: the call ran, its reply was lost with the connection. One safe
    to repeat is sent again (it ran twice); any other raises, having run once."""
    sha = r.script_load(COUNT)
    key = f"{prefix}:runs"
    with CuttingProxy(redis_url) as proxy:
        client = redis.Redis.from_url(proxy.url)
        line = Line(client)
        assert line.execute_command("PING") == b"PONG"  # an idle connection now
        proxy.cut_next_reply()
        if idempotent:
            assert line.execute_command("EVALSHA", sha, 1, key, idempotent=True) == 2
            assert r.get(key) == "2"
        else:
            with pytest.raises(redis.ConnectionError):
                line.execute_command("EVALSHA", sha, 1, key)
            assert r.get(key) == "1"
            assert line.execute_command("EVALSHA", sha, 1, key) == 2  # a fresh connection
        line.close()
        client.close()


def test_an_idle_connection_the_server_closed_is_replaced_before_a_call(
        redis_url: str, prefix: str, r: redis.Redis) -> None:
    sha = r.script_load(COUNT)
    key = f"{prefix}:runs"
    client = redis.Redis.from_url(redis_url)
    line = Line(client)
    before = line.execute_command("CLIENT", "ID")
    r.client_kill_filter(_id=str(before))
    assert line.execute_command("EVALSHA", sha, 1, key) == 1  # not idempotent: once
    assert r.get(key) == "1"
    assert line.execute_command("CLIENT", "ID") != before
    line.close()
    client.close()
