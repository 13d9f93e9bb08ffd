"""Autodiscovered by the bench worker: the same no-op as a Django task and a @handler."""

from __future__ import annotations

from typing import Any

from django_remq import handler
from django_remq.backends.compat import task


@task(queue_name="bench")
async def noop_task(i: int) -> int:
    return i


@handler("bench.noop", queue="bench")
async def noop_handler(job: Any, ctx: Any) -> Any:
    return job.data["args"][0]
