"""A worker process for bench/scale.py: each task HINCRBYs its job id in its queue's
``runs`` hash (the bench waits on it), and at exit the process writes the ids it ran
to ``--ran-file`` (the exact count per job, whatever the Redis client did) and prints
how many it ran."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from django_remq.core import TaskManager

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True)
parser.add_argument("--prefix", required=True)
parser.add_argument("--queues", required=True)
parser.add_argument("--concurrency", type=int, default=16)
parser.add_argument("--cluster", action="store_true")
parser.add_argument("--ran-file", required=True)
args = parser.parse_args()


async def main() -> None:
    ran: list[str] = []

    async def job(task: Any, ctx: Any) -> None:
        ran.append(task.id)
        # the engine's client: on a cluster, one initialised before use (core/store/connection.py)
        await tm.conn.aio.hincrby(f"{args.prefix}:{{{task.queue}}}:runs", task.id, 1)

    tm = TaskManager.init(db=args.url, prefix=args.prefix, concurrency=args.concurrency,
                          processor={"max_logs_per_task": 10, "retention": {
                              "completed_max_count": None, "failed_max_count": None}},
                          cluster=args.cluster)
    queues = args.queues.split(",")
    for queue in queues:
        tm.register_handler(event="job", handler=job, queue=queue)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await tm.start(queues)
    print("READY", flush=True)
    await stop.wait()
    await tm.stop()
    await tm.conn.aclose()
    Path(args.ran_file).write_text("\n".join(ran))
    print(f"RAN {len(ran)}", flush=True)


logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
asyncio.run(main())
