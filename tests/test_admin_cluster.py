"""The admin pages on a Redis Cluster (``REMQ["CLUSTER"]``) as on one node: the queues
page, a jobs list, a job page and an action (retry), through Django's test client. The
pages used to make a plain client of their own, which ignored ``CLUSTER``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.urls import reverse

from django_remq.admin_views.access import get_sdk
from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk

from .admin_support import PROCESSOR, boom, ok, remq_at
from .cluster import on_both

pytestmark = pytest.mark.redis


def failed_and_completed(redis_url: str, prefix: str, cluster: bool) -> dict[str, str]:
    """A failed job (dead-lettered) and a completed one, run by the real engine."""
    tm = TaskManager.init(db=redis_url, prefix=prefix, processor=PROCESSOR,  # type: ignore[arg-type]
                          cluster=cluster)
    tm.register_handler("send-email", ok)
    tm.register_handler("charge-card", boom, options={"attempts": 0})
    ids = {"completed": tm.emit("send-email", data={"to": "ada@example.com"}),
           "failed": tm.emit("charge-card", data={"amount": 42})}
    asyncio.run(tm.run(burst=True))
    tm.conn.close()
    return ids


@on_both()
def test_pages_and_a_retry(admin_client: Any, redis_url: str, prefix: str,
                           on_cluster: bool) -> None:
    ids = failed_and_completed(redis_url, prefix, on_cluster)
    with remq_at(redis_url, prefix, CLUSTER=on_cluster):
        assert get_sdk().conn.cluster is on_cluster
        queues = admin_client.get(reverse("remq_admin:queues"))
        assert queues.status_code == 200
        assert b"default" in queues.content
        listed = admin_client.get(reverse("remq_admin:jobs"), {"queue": "default",
                                                               "status": "failed"})
        assert listed.status_code == 200
        assert ids["failed"].encode() in listed.content
        assert ids["completed"].encode() not in listed.content
        page = admin_client.get(reverse("remq_admin:job", args=["default", ids["failed"]]))
        assert page.status_code == 200
        assert b"boom in charge-card" in page.content
        retried = admin_client.post(
            reverse("remq_admin:job_action", args=["default", ids["failed"], "retry"]),
            follow=True)
        assert retried.status_code == 200
    sdk = Sdk(redis_url, prefix=prefix, cluster=on_cluster)
    job = sdk.get_job(ids["failed"], "default")
    assert job is not None
    assert job.status == "waiting"
    sdk.conn.close()
