"""Background loops: how they are stopped when a client library loses the cancel."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from django_remq.core.loops import repeat, wait_cancelled

pytestmark = pytest.mark.unit


async def test_a_loop_that_lost_its_cancel_is_cancelled_again() -> None:
    """The loop's step swallows the cancel (as redis-py 5.2 under Python 3.11 could) and
    ``repeat`` sleeps its interval: the second cancel ends it at once; one that keeps
    swallowing is given up on at ``most`` and reported."""
    stopped, holding = False, True

    async def step() -> float:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)
        return 30.0

    async def stubborn() -> None:
        while holding:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(60)

    looping = asyncio.create_task(repeat(step, lambda: stopped, "test loop"))
    quick = asyncio.create_task(asyncio.sleep(60))
    held = asyncio.create_task(stubborn())
    await asyncio.sleep(0.01)
    stopped = True
    for task in (looping, quick, held):
        task.cancel()
    t0 = time.monotonic()
    slow, stuck = await wait_cancelled([looping, quick, held], again_after=0.2, most=0.6)
    assert 0.55 < time.monotonic() - t0 < 2
    assert (slow, stuck) == ({looping, held}, {held})
    assert looping.cancelled()
    assert quick.cancelled()
    holding = False
    held.cancel()
    await asyncio.wait([held], timeout=5)
    assert held.done()
    assert await wait_cancelled([]) == (set(), set())
