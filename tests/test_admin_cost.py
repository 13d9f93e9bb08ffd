"""Bounded cost: each admin page makes a fixed number of Redis round trips, the same
with a handful of jobs as with thousands (counted at the connection, not timed)."""

from __future__ import annotations

import pytest
import redis
from django.urls import reverse

from django_remq.admin_views.access import get_sdk

from .admin_support import make_jobs, remq_at
from .sdk_seed import seed_finished


class CountingConnection(redis.Connection):
    """Counts writes to the socket: one per command, one per pipeline (a round trip)."""

    sent = 0

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sent += 1
        return super().send_packed_command(command, check_health)


@pytest.fixture
def counted(redis_url, prefix):
    with remq_at(redis_url, prefix):
        pool = get_sdk().conn.sync.connection_pool
        pool.connection_class = CountingConnection
        pool.reset()
        yield


def round_trips(client, url: str) -> int:
    assert client.get(url).status_code == 200, url  # warm: connection made, scripts loaded
    CountingConnection.sent = 0
    assert client.get(url).status_code == 200, url
    return CountingConnection.sent


def urls(job_id: str) -> dict[str, str]:
    jobs = reverse("remq_admin:jobs")
    return {
        "queues": reverse("remq_admin:queues"),
        "jobs": jobs,
        "jobs one queue": f"{jobs}?queue=big&status=completed",
        "jobs deep page": f"{jobs}?queue=big&page=30",
        "jobs search": f"{jobs}?q=seeded",  # found in both sizes: the same reads
        "job": reverse("remq_admin:job", args=["default", job_id]),
        "dead letters": reverse("remq_admin:dead_letters"),
        "workers": reverse("remq_admin:workers"),
        "live jobs": reverse("remq_admin:live") + "?view=jobs&queue=big",
    }


#: The most round trips any page may make (the cross-queue listing is the costliest).
BOUND = {"queues": 3, "jobs": 5, "jobs one queue": 3, "jobs deep page": 3, "jobs search": 5,
         "job": 1, "dead letters": 2, "workers": 4, "live jobs": 3}


def test_round_trips_do_not_grow_with_the_number_of_jobs(admin_client, counted, redis_url,
                                                          prefix, r):
    ids = make_jobs(redis_url, prefix)
    seed_finished(r, prefix, "big", 100, "completed")
    small = {name: round_trips(admin_client, url) for name, url in urls(ids["failed"]).items()}
    seed_finished(r, prefix, "big", 5_000, "completed", start_ms=1_700_000_100_000)
    seed_finished(r, prefix, "big", 2_000, "failed", start_ms=1_700_000_200_000)
    seed_finished(r, prefix, "other", 1_000, "completed")
    big = {name: round_trips(admin_client, url) for name, url in urls(ids["failed"]).items()}
    assert big == small
    for name, n in big.items():
        assert 1 <= n <= BOUND[name], (name, n)
