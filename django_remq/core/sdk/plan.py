"""Multi-step Redis operations written once and run by a sync or an async driver.

An operation is a generator (a *plan*) that yields batches of steps (script
:class:`~..store.scripts.Call` s or plain :class:`~..store.scripts.Cmd` s) and is sent
back their parsed replies. :func:`drive` and :func:`adrive` send each batch in one
round trip (:func:`~..store.scripts.run_many`), so the Sdk's sync and async twins share
every line of logic and differ only in the driver.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, TypeVar

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from ..store.scripts import Step, arun_many, run_many

T = TypeVar("T")
Plan = Generator[Sequence[Step], list[Any], T]


def drive(client: Redis, plan: Plan[T]) -> T:
    """Run a plan to its end with the sync client."""
    try:
        steps = next(plan)
        while True:
            steps = plan.send(run_many(client, steps) if steps else [])
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def adrive(client: AsyncRedis, plan: Plan[T]) -> T:
    """Run a plan to its end with the asyncio client."""
    try:
        steps = next(plan)
        while True:
            steps = plan.send(await arun_many(client, steps) if steps else [])
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
