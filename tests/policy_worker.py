"""A worker process for the multi-process policy tests.

``python -m tests.policy_worker URL PREFIX MODE SECONDS``: registers the MODE's
handler, works for SECONDS (0: burst, until the queues are empty), exits. Each run
appends to ``<PREFIX>:test:runs`` so the test can count runs across processes.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from django_remq.core import TaskManager
from tests.cluster import client_for, is_cluster


def build(url: str, prefix: str, mode: str) -> TaskManager:
    tm = TaskManager.init(db=url, prefix=prefix, concurrency=4, cluster=is_cluster(url))
    client = client_for(url, decode_responses=True)
    runs = f"{prefix}:test:runs"

    def record(task: Any, ctx: Any) -> None:
        tick = client.hget(f"{prefix}:{{{task.queue}}}:job:{task.id}", "delay_until")
        client.rpush(runs, f"{task.id} {tick or 0} {task.data}")

    if mode == "debounce":
        tm.register_handler("deb", record, options={"debounce": {
            "window_ms": 30_000, "key": lambda m: m.data["k"]}})
    elif mode == "cron":
        tm.register_handler("tick", record, options={"repeat": {"pattern": "* * * * * *"}})
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return tm


async def main(url: str, prefix: str, mode: str, seconds: float) -> None:
    tm = build(url, prefix, mode)
    if not seconds:
        await tm.run(burst=True)
        return
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await tm.run(stop_event=stop)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
