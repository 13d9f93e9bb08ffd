"""Reading a job record in tests: through the Sdk, the one reader every part uses."""

from __future__ import annotations

import redis

from django_remq.core.sdk import Sdk
from django_remq.types import AdminJobData


def record(r: redis.Redis, prefix: str, job_id: str, queue: str = "default"
           ) -> AdminJobData | None:
    return Sdk(r, prefix=prefix).get_job(job_id, queue)
