"""The one way to run scripts (sync and async share it) and the one Lua list of statuses."""

from __future__ import annotations

import uuid
from importlib import resources

import pytest
import redis
import redis.asyncio
from redis.exceptions import ResponseError

from django_remq.core.store import scripts
from django_remq.core.store.keys import Keys
from django_remq.core.store.scripts import Call, Cmd, Script, arun_many, run_many
from django_remq.types import JobStatus

pytestmark = pytest.mark.redis

LIB = resources.files("django_remq.core.store").joinpath("lua", "_lib.lua").read_text()


def test_lua_statuses_are_the_python_ones(r: redis.Redis, prefix: str) -> None:
    """Adding a status touches JobStatus and _lib.lua's STATUSES: this keeps them one list."""
    probe = Script("probe", LIB + """
local idx, out = status_keys(), {}
for i, s in ipairs(STATUSES) do out[i] = {s, idx[s], FINAL[s] and 1 or 0} end
return out""")
    qk = Keys(prefix).queue("q")
    [rows] = run_many(r, [Call(probe, qk.script_keys, [], lambda reply: reply)])
    assert rows == [[s.value, qk.status(s), int(s.final)] for s in JobStatus]


def _fresh_script() -> Script:
    """A script this Redis has never seen: its first EVALSHA answers NOSCRIPT."""
    return Script("echo", f"-- {uuid.uuid4().hex}\nreturn ARGV[1] .. KEYS[1]")


def _steps(prefix: str) -> list[Call[str] | Cmd[int]]:
    echo = _fresh_script()
    return [Call(echo, [f"{prefix}:a"], ["x"], lambda b: b.decode()),
            Cmd(("INCR", f"{prefix}:n"), int),
            Call(echo, [f"{prefix}:b"], ["y"], lambda b: b.decode())]


def test_run_many_loads_missing_scripts_and_keeps_order(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert run_many(client, _steps(prefix)) == [f"x{prefix}:a", 1, f"y{prefix}:b"]
        echo = _fresh_script()
        assert scripts.run(client, Call(echo, ["k"], ["z"], bytes.decode)) == "zk"  # one step
        assert client.get(f"{prefix}:n") == b"1"  # the plain command ran once, not again
    finally:
        client.delete(f"{prefix}:n")
        client.close()


async def test_arun_many_is_the_same_exchange(redis_url: str, prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert await arun_many(client, _steps(prefix)) == [f"x{prefix}:a", 1, f"y{prefix}:b"]
        echo = _fresh_script()
        assert await scripts.arun(client, Call(echo, ["k"], ["z"], bytes.decode)) == "zk"
        assert await client.get(f"{prefix}:n") == b"1"
    finally:
        await client.delete(f"{prefix}:n")
        await client.aclose()


def test_a_step_after_writes_is_sent_again_after_a_reloaded_script(r: redis.Redis,
                                                                   prefix: str) -> None:
    """WAIT covers the writes before it on its connection: when a script had to be loaded
    and sent again, so is it (here a GET stands in, so the order shows in its reply)."""
    writer = Script("writer", f"-- {uuid.uuid4().hex}\nreturn redis.call('INCR', KEYS[1])")
    key = f"{prefix}:w"
    after = run_many(r, [Call(writer, [key], [], int), Cmd(("GET", key), after_writes=True)])
    assert after == [1, "1"]  # first send: NOSCRIPT, GET saw nothing; sent again after it
    again = Script("writer", f"-- {uuid.uuid4().hex}\nreturn redis.call('INCR', KEYS[1])")
    plain = run_many(r, [Call(again, [key], [], int), Cmd(("GET", key))])
    assert plain == [2, "1"]  # without the flag a step is not repeated: it saw the old value


def test_an_error_reply_is_raised_alone_or_in_a_batch(r: redis.Redis, prefix: str) -> None:
    r.set(f"{prefix}:s", "text")
    wrong = Cmd(("LPUSH", f"{prefix}:s", "x"))
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        run_many(r, [wrong])
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        run_many(r, [Cmd(("GET", f"{prefix}:s")), wrong])
