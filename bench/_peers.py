"""The same job on the peers, for ``bench/peers.py``: huey and dramatiq apps whose one
task INCRs ``<prefix>:counter`` with a sync redis-py client (what a Django user's
handler does). The URL and the prefix come from the environment, so the emitting
process and the peer's own worker command (``huey_consumer _peers.huey``,
``dramatiq _peers``) build the same app."""

from __future__ import annotations

import os

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from huey import RedisHuey

URL = os.environ["PEERS_REDIS_URL"]
PREFIX = os.environ["PEERS_PREFIX"]
COUNTER = f"{PREFIX}:counter"
client = redis.Redis.from_url(URL)

huey = RedisHuey(f"{PREFIX}-huey", url=URL, results=False)


@huey.task()
def huey_incr(i: int) -> None:
    client.incr(COUNTER)


dramatiq.set_broker(RedisBroker(url=URL, namespace=f"{PREFIX}-dramatiq"))


@dramatiq.actor(max_retries=0)
def dramatiq_incr(i: int) -> None:
    client.incr(COUNTER)
