"""The AioLine: a worker's script round trips on an event loop's own connections."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis
import redis.asyncio
from redis.exceptions import NoScriptError

from django_remq.core import TaskManager
from django_remq.core.store import calls
from django_remq.core.store.connection import Connection
from django_remq.core.store.keys import Keys
from django_remq.core.store.line import AioLine
from django_remq.core.store.redis_compat import closed_by_server
from django_remq.core.store.scripts import arun_many

from .line_proxy import CuttingProxy
from .workers import await_until, wait_until

pytestmark = pytest.mark.redis

SCRIPT = "return {KEYS[1], ARGV[1], 3}"


def _named(r: redis.Redis, name: str) -> list[dict[str, str]]:
    return [c for c in r.client_list() if c.get("name") == name]


async def test_replies_are_the_pipelines_error_replies_included(redis_url: str, prefix: str,
                                                                r: redis.Redis) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    line = AioLine(client)
    sha = r.script_load(SCRIPT)
    key = f"{prefix}:k"
    commands = [("EVALSHA", sha, 1, key, "v"), ("EVALSHA", "0" * 40, 0),
                ("EVALSHA", sha, 1, key, "é")]
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    expected = await pipe.execute(raise_on_error=False)
    got = await line.execute(commands)
    assert got[0] == expected[0] == [key, "v", 3]
    assert got[2] == expected[2] == [key, "é", 3]
    assert isinstance(got[1], NoScriptError)
    assert isinstance(expected[1], NoScriptError)
    first = await line.execute([("CLIENT", "ID")])
    assert await line.execute([("CLIENT", "ID")]) == first  # the error kept it in step
    await line.aclose()
    await client.aclose()


async def test_a_killed_idle_connection_is_replaced_and_the_call_sent_again(
        redis_url: str, prefix: str, r: redis.Redis) -> None:
    client = redis.asyncio.Redis.from_url(f"{redis_url}?client_name={prefix}-kill",
                                          decode_responses=True)
    line = AioLine(client)
    [before] = await line.execute([("CLIENT", "ID")])
    r.client_kill_filter(_id=str(before))
    # raw replies (no redis-py callbacks: only script calls, which have none, go on a line)
    assert await line.execute([("SET", f"{prefix}:k", "after"), ("GET", f"{prefix}:k")],
                              idempotent=True) == ["OK", "after"]
    [after] = await line.execute([("CLIENT", "ID")])
    assert after != before
    await line.aclose()
    assert wait_until(lambda: _named(r, f"{prefix}-kill") == [], timeout=5)
    await client.aclose()


async def test_a_call_cancelled_mid_reply_never_hands_its_reply_to_the_next(
        redis_url: str, prefix: str, r: redis.Redis) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    line = AioLine(client)
    key = f"{prefix}:list"
    waiting = asyncio.create_task(line.execute([("BLPOP", key, 5)]))
    assert await await_until(lambda: any(c.get("cmd") == "blpop" for c in r.client_list()),
                             timeout=5), "the BLPOP never reached Redis"
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    r.rpush(key, "late")  # the cancelled read's reply, had its connection been kept
    assert await line.execute([("ECHO", "mine")]) == ["mine"]
    await line.aclose()
    await client.aclose()


async def test_a_round_trip_loads_scripts_redis_lost(private_redis_url: str,
                                                     prefix: str) -> None:
    r = redis.Redis.from_url(private_redis_url, decode_responses=True)
    tm = TaskManager.init(db=private_redis_url, prefix=prefix)
    line = tm.conn.aline
    assert line is not None
    await tm.aemit("noop")  # registers the queue and loads the scripts
    r.script_flush()
    batch = tm._batch([tm.prepare("noop", None, {"after": "flush"}, None)])
    assert len(batch.steps) == 1  # the queue is known: the emit script alone, on the line
    [ids] = await arun_many(tm.conn.aio, batch.steps, line)
    assert ids == [1]
    assert r.xlen(tm.keys.queue("default").stream) == 2
    await tm.conn.aclose()


async def test_other_encodings_are_packed_by_redis_py(redis_url: str, prefix: str,
                                                      r: redis.Redis) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, encoding="latin-1")
    line = AioLine(client)
    await line.execute([("SET", f"{prefix}:latin", "é")])
    raw = redis.Redis.from_url(redis_url)
    assert raw.get(f"{prefix}:latin") == "é".encode("latin-1")
    raw.close()
    await line.aclose()
    await client.aclose()


def test_each_loop_has_its_own_line_closed_with_the_connection(redis_url: str, prefix: str,
                                                               r: redis.Redis) -> None:
    conn = Connection(f"{redis_url}?client_name={prefix}-loops")
    lines: list[AioLine | None] = []

    async def use() -> None:
        line = conn.aline
        assert line is conn.aline  # one per loop
        await line.execute([("PING",)])  # type: ignore[union-attr]
        lines.append(line)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(use())
    other = threading.Thread(target=lambda: asyncio.run(use()))
    other.start()
    other.join()
    assert len(lines) == 2
    assert lines[0] is not lines[1]
    assert len(_named(r, f"{prefix}-loops")) == 1  # the other loop's closed with it
    conn.close()
    loop.close()
    assert wait_until(lambda: _named(r, f"{prefix}-loops") == [], timeout=5)


def test_a_loop_that_met_thousands_of_connections_closes_the_live_ones(
        redis_url: str, prefix: str, r: redis.Redis) -> None:
    """An ``Sdk(url)`` per request on a server's one loop: each connection used there
    is closed when the loop closes if it is still alive, and one that is gone costs
    the loop nothing (a hook of each, nested, overflowed the stack at the close)."""
    kept = Connection(f"{redis_url}?client_name={prefix}-kept")

    async def requests() -> None:
        for _ in range(3000):
            assert Connection(redis_url).aio is not None
        await kept.aio.ping()
        assert len(_named(r, f"{prefix}-kept")) == 1

    asyncio.run(requests())
    assert wait_until(lambda: _named(r, f"{prefix}-kept") == [], timeout=5)


async def test_a_line_only_beside_the_plain_client_redis_py_makes(redis_url: str) -> None:
    import fakeredis

    assert Connection(fakeredis.FakeAsyncRedis()).aline is None
    plain = Connection(redis_url)
    assert plain.aline is not None
    await plain.aclose()


async def test_clients_given_are_copied_per_loop_with_their_kind_of_connection() -> None:
    """An asyncio client given is copied for each loop: TLS stays TLS, and connection
    classes the engine cannot copy are refused by name (they used to become plain ones)."""
    from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

    tls = Connection(redis.asyncio.Redis(host="127.0.0.1", port=1, ssl=True))
    assert tls.aio.connection_pool.connection_class is redis.asyncio.SSLConnection
    assert tls.sync.connection_pool.connection_class is redis.SSLConnection
    unix = Connection(redis.asyncio.Redis(unix_socket_path="/tmp/none.sock"))
    assert unix.aio.connection_pool.connection_class is redis.asyncio.UnixDomainSocketConnection
    pool = SentinelConnectionPool("mymaster", Sentinel([("127.0.0.1", 1)]))
    sentinel = Connection(redis.asyncio.Redis(connection_pool=pool))
    with pytest.raises(TypeError, match=r"SentinelManagedConnection.*Pass a redis:// URL"):
        sentinel.aio  # noqa: B018


async def test_no_line_on_a_cluster(cluster_url: str) -> None:
    """A cluster client routes each key to its node: round trips keep to it."""
    conn = Connection(cluster_url, cluster=True)
    assert conn.aline is None
    assert conn.blocking_line(1000) is None
    await conn.aclose()


COUNT = "return redis.call('INCR', KEYS[1])"


@pytest.mark.parametrize("idempotent", [True, False])
async def test_a_reply_lost_mid_call_is_sent_again_only_when_safe(
        redis_url: str, prefix: str, r: redis.Redis, idempotent: bool) -> None:
    """The connection is cut after Redis ran the call, before its reply arrives: a call
    safe to repeat is sent again (it ran twice, and answers); any other raises, having run
    once, for its caller's own logic to handle."""
    sha = r.script_load(COUNT)
    key = f"{prefix}:runs"
    with CuttingProxy(redis_url) as proxy:
        client = redis.asyncio.Redis.from_url(proxy.url)
        line = AioLine(client)
        assert await line.execute([("PING",)]) == [b"PONG"]  # an idle connection now
        proxy.cut_next_reply()
        if idempotent:
            assert await line.execute([("EVALSHA", sha, 1, key)], idempotent=True) == [2]
            assert r.get(key) == "2"
        else:
            with pytest.raises(redis.ConnectionError):
                await line.execute([("EVALSHA", sha, 1, key)])
            assert r.get(key) == "1"
            assert await line.execute([("EVALSHA", sha, 1, key)]) == [2]  # a fresh connection
        await line.aclose()
        await client.aclose()


async def test_log_lines_are_never_written_twice(redis_url: str, prefix: str,
                                                 r: redis.Redis) -> None:
    """update.lua (a running job's log lines: RPUSH) is not sent again when its reply is
    lost; emit.lua (a live job is never enqueued twice) is."""
    qk = Keys(prefix).queue("default")
    r.hset(qk.job("j1"), "status", "processing")
    with CuttingProxy(redis_url) as proxy:
        conn = Connection(proxy.url)
        line = conn.aline
        assert line is not None
        await arun_many(conn.aio, [calls.update(qk, "j1", [("log", '"warm"')], 100)], line)
        proxy.cut_next_reply()
        with pytest.raises(redis.ConnectionError):
            await arun_many(conn.aio, [calls.update(qk, "j1", [("log", '"once"')], 100)], line)
        assert r.lrange(qk.logs("j1"), 0, -1) == ['"warm"', '"once"']
        await conn.aclose()


async def test_an_idle_connection_the_server_closed_is_replaced_before_a_call(
        redis_url: str, prefix: str, r: redis.Redis) -> None:
    """A call not safe to repeat never goes out on a connection the server closed while it
    sat idle (a restart, a timeout): it goes on a fresh one, once, without an error."""
    sha = r.script_load(COUNT)
    key = f"{prefix}:runs"
    client = redis.asyncio.Redis.from_url(redis_url)
    line = AioLine(client)
    [before] = await line.execute([("CLIENT", "ID")])
    [idle] = line._idle
    assert not closed_by_server(idle)
    r.client_kill_filter(_id=str(before))
    assert await await_until(lambda: closed_by_server(idle), timeout=5)
    assert await line.execute([("EVALSHA", sha, 1, key)]) == [1]
    assert r.get(key) == "1"
    [after] = await line.execute([("CLIENT", "ID")])
    assert after != before
    await line.aclose()
    await client.aclose()
