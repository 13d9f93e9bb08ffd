"""The one shape of every background loop: do a step, sleep what it says, survive errors;
and how such loops are stopped.

Below both the worker and the policies (cron claims its ticks in one), so neither
reaches into the other for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection

log = logging.getLogger("django_remq.loops")


async def repeat(step: Callable[[], Awaitable[float]], stopped: Callable[[], bool], what: str,
                 retry_in: float = 1.0) -> None:
    """Run ``step`` until ``stopped()`` (checked as well as cancellation: a client library
    may swallow a cancel); ``step`` returns the seconds to sleep before the next one."""
    while not stopped():
        try:
            wait = await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, retry_in)
            wait = retry_in
        await asyncio.sleep(max(wait, 0.005))


async def wait_cancelled(tasks: Collection[asyncio.Task[None]], *, again_after: float = 0.5,
                         most: float = 5.0) -> tuple[set[asyncio.Task[None]],
                                                     set[asyncio.Task[None]]]:
    """Wait for ``tasks``, cancelled already, at most ``most`` s; those still running after
    ``again_after`` s are cancelled again: a client library may swallow a cancel
    (redis-py 5.2 under Python 3.11 did), and its loop then sleeps its whole interval
    before it sees the stopping flag. Returns the slow ones and those still running."""
    if not tasks:
        return set(), set()
    _, slow = await asyncio.wait(tasks, timeout=again_after)
    for task in slow:
        task.cancel()
    _, stuck = await asyncio.wait(slow, timeout=most - again_after) if slow else ((), set())
    return slow, stuck
