"""The Lua scripts (``lua/*.lua``) and the one way to run them, sync or async.

Every state change of a job is one script, so it is atomic. A :class:`Call` is a
script with its keys and arguments plus the function that parses its reply: the
sync and the async clients run the same ``Call`` and share every byte of logic
but the I/O. Scripts run by EVALSHA and are loaded on NOSCRIPT (after a Redis
restart or failover), never sent in full on the hot path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Generic, TypeVar

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import NoScriptError

T = TypeVar("T")
Arg = str | int | float | bytes


@dataclass(frozen=True)
class Script:
    name: str
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")


_LIB = _read("_lib")


def _load(name: str) -> Script:
    """A script with the shared helpers of ``_lib.lua`` in front (Lua has no import)."""
    return Script(name, f"{_LIB}\n{_read(name)}")


def _load_admin(name: str) -> Script:
    """An admin script: the shared helpers, ``lua/_admin.lua``'s too, then the script."""
    return Script(name, f"{_LIB}\n{_read('_admin')}\n{_read(name)}")


EMIT = _load("emit")
DELIVER = _load("deliver")
FINISH = _load("finish")
PROMOTE = _load("promote")
RENEW = _load("renew")
UPDATE = _load("update")
CRON = _load("cron")
DEBOUNCE = _load("debounce")
DEBOUNCE_EMIT = _load("debounce_emit")

ADMIN_READ = _load_admin("admin_read")
ADMIN_LIST = _load_admin("admin_list")
ADMIN_STATS = _load_admin("admin_stats")
ADMIN_RETRY = _load_admin("admin_retry")
ADMIN_CANCEL = _load_admin("admin_cancel")
ADMIN_PAUSE = _load_admin("admin_pause")
ADMIN_RESUME = _load_admin("admin_resume")
ADMIN_DELETE = _load_admin("admin_delete")
ADMIN_BULK = _load_admin("admin_bulk")
ADMIN_RESTORE = _load_admin("admin_restore")
ADMIN_CANCEL_REQUESTS = _load_admin("admin_cancel_requests")

ALL = (EMIT, DELIVER, FINISH, PROMOTE, RENEW, UPDATE, CRON, DEBOUNCE, DEBOUNCE_EMIT,
       ADMIN_READ, ADMIN_LIST, ADMIN_STATS, ADMIN_RETRY, ADMIN_CANCEL, ADMIN_PAUSE, ADMIN_RESUME,
       ADMIN_DELETE, ADMIN_BULK, ADMIN_RESTORE, ADMIN_CANCEL_REQUESTS)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One script invocation and how to read its reply."""

    script: Script
    keys: Sequence[str]
    args: Sequence[Arg]
    parse: Callable[[Any], T]

    @property
    def evalsha_args(self) -> tuple[Any, ...]:
        return (self.script.sha, len(self.keys), *self.keys, *self.args)


def run(client: Redis, call: Call[T]) -> T:
    try:
        reply = client.evalsha(*call.evalsha_args)
    except NoScriptError:
        client.script_load(call.script.source)
        reply = client.evalsha(*call.evalsha_args)
    return call.parse(reply)


async def arun(client: AsyncRedis, call: Call[T]) -> T:
    try:
        reply = await client.evalsha(*call.evalsha_args)  # type: ignore[misc]
    except NoScriptError:
        await client.script_load(call.script.source)
        reply = await client.evalsha(*call.evalsha_args)  # type: ignore[misc]
    return call.parse(reply)


def run_many(client: Redis, calls: Sequence[Call[Any]]) -> list[Any]:
    """Run several calls in one round trip (a non-transactional pipeline; on a Redis
    Cluster one per node). EVALSHA goes through ``execute_command``: redis-py's cluster
    pipelines refuse ``.evalsha()`` but route the raw command by its keys."""
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for call in calls:
            pipe.execute_command("EVALSHA", *call.evalsha_args)  # type: ignore[no-untyped-call]
        try:
            replies = pipe.execute()
            break
        except NoScriptError:
            if attempt == 2:
                raise
            for call in calls:
                client.script_load(call.script.source)
    return [call.parse(reply) for call, reply in zip(calls, replies, strict=True)]


async def arun_many(client: AsyncRedis, calls: Sequence[Call[Any]]) -> list[Any]:
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for call in calls:
            pipe.execute_command("EVALSHA", *call.evalsha_args)
        try:
            replies = await pipe.execute()
            break
        except NoScriptError:
            if attempt == 2:
                raise
            for call in calls:
                await client.script_load(call.script.source)
    return [call.parse(reply) for call, reply in zip(calls, replies, strict=True)]
