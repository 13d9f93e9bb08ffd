"""Multi-step Redis operations written once and run by a sync or an async driver.

An operation is a generator (a *plan*) that yields batches of steps (script
:class:`~.scripts.Call` s or plain :class:`Cmd` s) and is sent back their parsed
replies. :func:`drive` and :func:`adrive` send each batch in one round trip (a
non-transactional pipeline), so the Sdk's sync and async twins share every line of
logic and differ only in the driver. Scripts run by EVALSHA and are loaded on
NOSCRIPT; only the steps that failed are sent again.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import NoScriptError

from ..store.scripts import Arg, Call

T = TypeVar("T")


def _same(reply: Any) -> Any:
    return reply


@dataclass(frozen=True)
class Cmd(Generic[T]):
    """A plain Redis command (one key, or keys of one slot) and how to read its reply."""

    args: tuple[Arg, ...]
    parse: Callable[[Any], T] = _same


Step = Call[Any] | Cmd[Any]
Plan = Generator[Sequence[Step], list[Any], T]


def _queue(pipe: Any, steps: Sequence[Step]) -> None:
    for step in steps:
        if isinstance(step, Call):
            # execute_command: redis-py's cluster pipelines refuse .evalsha() but route this
            pipe.execute_command("EVALSHA", *step.evalsha_args)
        else:
            pipe.execute_command(*step.args)


def _unloaded(replies: Sequence[Any]) -> list[int]:
    """Indexes of replies that failed for want of a loaded script; re-raises other errors."""
    missing = []
    for i, reply in enumerate(replies):
        if isinstance(reply, NoScriptError):
            missing.append(i)
        elif isinstance(reply, Exception):
            raise reply
    return missing


def _parse(steps: Sequence[Step], replies: Sequence[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return [step.parse(reply) for step, reply in zip(steps, replies, strict=True)]


def execute(client: Redis, steps: Sequence[Step]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    _queue(pipe, steps)
    replies = list(pipe.execute(raise_on_error=False))
    missing = _unloaded(replies)
    if missing:
        again = [steps[i] for i in missing]
        for script in {step.script for step in again if isinstance(step, Call)}:
            client.script_load(script.source)
        pipe = client.pipeline(transaction=False)
        _queue(pipe, again)
        for i, reply in zip(missing, pipe.execute(raise_on_error=False), strict=True):
            replies[i] = reply
    return _parse(steps, replies)


async def aexecute(client: AsyncRedis, steps: Sequence[Step]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    _queue(pipe, steps)
    replies = list(await pipe.execute(raise_on_error=False))
    missing = _unloaded(replies)
    if missing:
        again = [steps[i] for i in missing]
        for script in {step.script for step in again if isinstance(step, Call)}:
            await client.script_load(script.source)
        pipe = client.pipeline(transaction=False)
        _queue(pipe, again)
        for i, reply in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
            replies[i] = reply
    return _parse(steps, replies)


def drive(client: Redis, plan: Plan[T]) -> T:
    """Run a plan to its end with the sync client."""
    try:
        steps = next(plan)
        while True:
            steps = plan.send(execute(client, steps) if steps else [])
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def adrive(client: AsyncRedis, plan: Plan[T]) -> T:
    """Run a plan to its end with the asyncio client."""
    try:
        steps = next(plan)
        while True:
            steps = plan.send(await aexecute(client, steps) if steps else [])
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
