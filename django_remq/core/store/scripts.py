"""The Lua scripts (``lua/*.lua``) and the one way to run them, sync or async.

Every state change of a job is one script, so it is atomic. A :class:`Call` is a
script with its keys and arguments plus the function that parses its reply; a
:class:`Cmd` is the same for a plain command. :func:`run_many` and :func:`arun_many`
send any mix of them in one round trip and share every line of logic but the I/O
(:func:`_round_trip`). Scripts run by EVALSHA and are loaded on NOSCRIPT (after a
Redis restart or failover), never sent in full on the hot path. On a Redis Cluster, a
round trip that ends with ``WAIT`` goes node by node (:mod:`.cluster_wait`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any, Generic, TypeVar

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, MovedError, NoScriptError, ResponseError

from . import cluster_wait
from .line import AioLine, Line

T = TypeVar("T")
Arg = str | int | float | bytes


@dataclass(frozen=True)
class Script:
    """A Lua script. ``idempotent``: safe to send again when the connection was lost
    after it went out (it may have run): a second run leaves Redis as one run does and
    answers what its caller reads right. Only such calls are sent again by a
    :mod:`.line`; the others raise, for their caller's own logic."""

    name: str
    source: str
    idempotent: bool = False

    @cached_property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")


_LIB = _read("_lib")


def _load(name: str, *, idempotent: bool = False) -> Script:
    """A script with the shared helpers of ``_lib.lua`` in front (Lua has no import)."""
    return Script(name, f"{_LIB}\n{_read(name)}", idempotent)


def _load_admin(name: str, *, idempotent: bool = False) -> Script:
    """An admin script: the shared helpers, ``lua/_admin.lua``'s too, then the script."""
    return Script(name, f"{_LIB}\n{_read('_admin')}\n{_read(name)}", idempotent)


# Which scripts are safe to send again (Script.idempotent), and why.
#: a live job with the call's id is never enqueued twice
EMIT = _load("emit", idempotent=True)
#: no: a second fetch takes (and counts a delivery of) more entries
DELIVER = _load("deliver", idempotent=False)
#: an entry is acknowledged once (XACK); again, a job answers 0, "acknowledged elsewhere",
#: which only skips its live event: the acker would send it again all the same
FINISH = _load("finish", idempotent=True)
#: each due job moves once; again, it moves those due since
PROMOTE = _load("promote", idempotent=True)
#: pushes the same leases forward
RENEW = _load("renew", idempotent=True)
#: no: the log lines would be written twice
UPDATE = _load("update", idempotent=False)
#: exactly once per tick: again, it finds the tick moved on
CRON = _load("cron", idempotent=True)
#: the window's holder token is the job's own: again, it still holds it
DEBOUNCE = _load("debounce", idempotent=True)
#: no: again, it would count (and log) a second emit into the window
DEBOUNCE_EMIT = _load("debounce_emit", idempotent=False)

#: reads only
ADMIN_READ = _load_admin("admin_read", idempotent=True)
ADMIN_LIST = _load_admin("admin_list", idempotent=True)
ADMIN_STATS = _load_admin("admin_stats", idempotent=True)
#: no: again, the job is waiting and the retry answers "cannot retry"
ADMIN_RETRY = _load_admin("admin_retry", idempotent=False)
#: again, "noop" (already cancelled, paused, waiting): what is so
ADMIN_CANCEL = _load_admin("admin_cancel", idempotent=True)
ADMIN_PAUSE = _load_admin("admin_pause", idempotent=True)
ADMIN_RESUME = _load_admin("admin_resume", idempotent=True)
ADMIN_RUN_NOW = _load_admin("admin_run_now", idempotent=True)
#: no: again, "missing" (reads as "no such job")
ADMIN_DELETE = _load_admin("admin_delete", idempotent=False)
#: no: again, it handles the next batch and its count is lost
ADMIN_BULK = _load_admin("admin_bulk", idempotent=False)
#: no: again, "noop" (reads as "already on its way")
ADMIN_RESTORE = _load_admin("admin_restore", idempotent=False)


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

    @property
    def command(self) -> tuple[Any, ...]:
        return ("EVALSHA", *self.evalsha_args)

    @property
    def key(self) -> str | None:
        """The key whose hash slot the call runs in (a script's keys share one)."""
        return str(self.keys[0]) if self.keys else None

    @property
    def idempotent(self) -> bool:
        """Safe to send again after a lost connection (its script's :attr:`Script.idempotent`)."""
        return self.script.idempotent


def _same(reply: Any) -> Any:
    return reply


@dataclass(frozen=True)
class Cmd(Generic[T]):
    """A plain Redis command (one key, or keys of one slot) and how to read its reply.
    ``after_writes`` (``WAIT``): it covers the steps before it, so it is sent again
    after any of them that had to be sent again."""

    args: tuple[Arg, ...]
    parse: Callable[[Any], T] = _same
    after_writes: bool = False

    @property
    def command(self) -> tuple[Arg, ...]:
        return self.args

    @property
    def key(self) -> str | None:
        """The command's (first) key, ``None`` for a keyless one (``WAIT``, ``ROLE``)."""
        return str(self.args[1]) if len(self.args) > 1 and not self.after_writes else None


Step = Call[Any] | Cmd[Any]
#: What a round trip asks of its driver: send these steps, or load these scripts.
Request = Sequence[Step] | set[Script]


#: Replies a round trip answers by sending the step again: NOSCRIPT (the scripts are
#: loaded first) and, on a cluster's node-by-node round trip, MOVED (the slot map is
#: updated by then) and CLUSTERDOWN (the driver has waited and learnt the map again).
#: None of them ran the step. Bounded: a MOVED then a NOSCRIPT on the new master takes
#: two; three CLUSTERDOWN in a row are raised, as redis-py's cluster client does.
_AGAIN = (NoScriptError, MovedError, ClusterDownError)
_ROUNDS = 3


def _round_trip(steps: Sequence[Step]) -> Generator[Request, Any, list[Any]]:
    """One round trip, without I/O (the sync and the async driver share it): send the
    steps, scripts by EVALSHA; if Redis lost some scripts (a restart or failover), load
    them and send only those steps again (and a ``WAIT`` after them). Replies are
    parsed; an error reply is raised."""
    replies = list((yield steps))
    for _ in range(_ROUNDS):
        again = [i for i, reply in enumerate(replies) if isinstance(reply, _AGAIN)]
        if not again:
            break
        again = sorted({*again, *(i for i, step in enumerate(steps)
                                  if isinstance(step, Cmd) and step.after_writes)})
        lost = {step.script for i in again
                if isinstance(replies[i], NoScriptError) and isinstance(step := steps[i], Call)}
        if lost:
            yield lost
        for i, reply in zip(again, (yield [steps[i] for i in again]), strict=True):
            replies[i] = _later(steps[i], replies[i], reply)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return [step.parse(reply) for step, reply in zip(steps, replies, strict=True)]


def _later(step: Step, before: Any, after: Any) -> Any:
    """A step's reply once sent again. A ``WAIT`` keeps the fewer replicas: on a cluster
    the second one may have gone only to the masters whose writes were sent again."""
    if (isinstance(step, Cmd) and step.after_writes and isinstance(before, int)
            and isinstance(after, int)):
        return min(before, after)
    return after


def _command(target: Any, step: Step) -> Any:
    """Send (or, on a pipeline, queue) one step; ``target`` is a client or a pipeline."""
    return target.execute_command(*step.command)


def run_many(client: Redis, steps: Sequence[Step], line: Line | None = None) -> list[Any]:
    """Run steps in one round trip (a non-transactional pipeline; one step goes alone, a
    lone script on ``line`` when given: see :mod:`.line`)."""
    trip = _round_trip(steps)
    request = next(trip)
    try:
        while True:
            request = trip.send(_send(client, request, line))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _send(client: Redis, request: Request, line: Line | None = None) -> Any:
    if isinstance(request, set):
        for script in request:
            client.script_load(script.source)
        return None
    if cluster_wait.waits(request) and isinstance(client, RedisCluster):
        return cluster_wait.send(client, request)
    if len(request) == 1:  # a pipeline of one costs ~15 % more than the bare command
        step = request[0]
        try:
            if line is not None and isinstance(step, Call):
                return [line.execute_command(*step.command, idempotent=step.idempotent)]
            return [_command(client, step)]
        except ResponseError as exc:
            return [exc]
    pipe = client.pipeline(transaction=False)
    for step in request:
        _command(pipe, step)
    return pipe.execute(raise_on_error=False)


async def arun_many(client: AsyncRedis, steps: Sequence[Step],
                    line: AioLine | None = None) -> list[Any]:
    """Async twin of :func:`run_many` (the same :func:`_round_trip`); with ``line``, a
    round trip of script calls only goes on it (:class:`.line.AioLine`)."""
    trip = _round_trip(steps)
    request = next(trip)
    try:
        while True:
            request = trip.send(await _asend(client, request, line))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def _asend(client: AsyncRedis, request: Request, line: AioLine | None = None) -> Any:
    if isinstance(request, set):
        for script in request:
            await client.script_load(script.source)
        return None
    if line is not None and all(isinstance(step, Call) for step in request):
        return await line.execute([step.command for step in request],
                                  idempotent=all(isinstance(step, Call) and step.idempotent
                                                 for step in request))
    if cluster_wait.waits(request) and isinstance(client, AsyncRedisCluster):
        return await cluster_wait.asend(client, request)
    if len(request) == 1:
        try:
            return [await _command(client, request[0])]
        except ResponseError as exc:
            return [exc]
    pipe = client.pipeline(transaction=False)
    for step in request:
        _command(pipe, step)
    return await pipe.execute(raise_on_error=False)


def run(client: Redis, call: Call[T]) -> T:
    return run_many(client, [call])[0]  # type: ignore[no-any-return]


async def arun(client: AsyncRedis, call: Call[T], line: AioLine | None = None) -> T:
    return (await arun_many(client, [call], line))[0]  # type: ignore[no-any-return]
