"""Queues are free: work spread over many queues drains with about the round trips and
scripts of one queue, and a worker serving 1,000 queues works.

Counted on a redis-server of the test's own (INFO commandstats), not timed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from django_remq.core import TaskManager
from django_remq.core.store.keys import Keys

pytestmark = pytest.mark.redis


def scripts(client: redis.Redis) -> int:
    """Script calls Redis ran so far."""
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
               for name in ("evalsha", "eval"))


def drain(url: str, queues: list[str], n: int) -> tuple[int, set[str]]:
    """Emit ``n`` tasks over ``queues``, drain them with one burst worker; (script calls
    the drain cost, the job ids that ran)."""
    tm = TaskManager.init(db=url, prefix="fleet", concurrency=16)
    ran: set[str] = set()

    async def job(task: Any, ctx: Any) -> None:
        ran.add(task.id)

    for q in queues:
        tm.register_handler(event="job", handler=job, queue=q)
    tm.emit_many({"event": "job", "queue": queues[i % len(queues)], "data": i}
                  for i in range(n))
    client = redis.Redis.from_url(url)
    before = scripts(client)
    asyncio.run(tm.run(queues, burst=True))
    used = scripts(client) - before
    completed = sum(client.zcard(Keys("fleet").queue(q).status("completed")) for q in queues)
    client.close()
    tm.conn.close()
    assert completed == n
    return used, ran


def test_work_spread_over_100_queues_costs_about_the_scripts_of_one_queue(
        private_redis_url):
    n = 3200
    one, ran_one = drain(private_redis_url, ["solo"], n)
    spread, ran_spread = drain(private_redis_url, [f"q{i}" for i in range(100)], n)
    assert len(ran_one) == len(ran_spread) == n
    # one queue: a fetch and a finish per ~16 tasks. Spread, each fetch still serves one
    # queue for many tasks (the hot queues' turns); before, a fetch ran one script per
    # queue for a slot or two each (~2.3 scripts a task at 100 queues)
    assert spread <= max(3 * one, n // 2), f"{spread} scripts spread vs {one} on one queue"


def test_a_worker_serving_1000_queues_drains_them(private_redis_url):
    queues = [f"q{i}" for i in range(1000)]
    _, ran = drain(private_redis_url, queues, 3000)
    assert len(ran) == 3000
