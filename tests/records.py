"""Reading a job record in tests, straight from Redis (what a worker left behind)."""

from __future__ import annotations

import redis

from django_remq.core.store.keys import Keys
from django_remq.core.store.records import decode
from django_remq.types import AdminJobData


def record(r: redis.Redis, prefix: str, job_id: str, queue: str = "default"
           ) -> AdminJobData | None:
    qk = Keys(prefix).queue(queue)
    fields = r.hgetall(qk.job(job_id))
    return decode(fields, r.lrange(qk.logs(job_id), 0, -1)) if fields else None  # type: ignore[arg-type]
