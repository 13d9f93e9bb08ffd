"""Capped exponential backoff with jitter, for reconnecting to Redis; and what counts as
Redis being away (waited out, not reported as a bug)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from redis.exceptions import ClusterDownError, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: Redis unreachable, or a cluster between masters (CLUSTERDOWN while a failover
#: promotes a replica, a slot no node serves yet; TRYAGAIN while a slot migrates):
#: retry after a backoff.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ClusterDownError, SlotNotCoveredError,
              TryAgainError, OSError)


@dataclass
class Backoff:
    """``next()`` gives 0.1 s, 0.2 s, 0.4 s ... up to ``cap`` seconds, each +/- 20 %."""

    base: float = 0.1
    cap: float = 5.0
    attempt: int = 0

    def next(self) -> float:
        delay = min(self.cap, self.base * (2 ** self.attempt))
        self.attempt += 1
        return float(delay * random.uniform(0.8, 1.2))

    def reset(self) -> None:
        self.attempt = 0
