"""The one shape of every background loop: do a step, sleep what it says, survive errors.

Below both the worker and the policies (cron claims its ticks in one), so neither
reaches into the other for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

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
