"""Bounded cost: each admin page makes a fixed number of Redis round trips, the same
with a handful of jobs as with thousands (counted at the connection, not timed)."""

from __future__ import annotations

import pytest
import redis
from django.urls import reverse

from django_remq.admin_views.access import get_sdk
from django_remq.core import TaskManager
from django_remq.core.store import scripts
from django_remq.core.store.keys import Keys

from .admin_support import make_jobs, remq_at
from .sdk_seed import seed_finished

pytestmark = pytest.mark.redis


class CountingConnection(redis.Connection):
    """Counts writes to the socket: one per command, one per pipeline (a round trip)."""

    sent = 0

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sent += 1
        return super().send_packed_command(command, check_health)


@pytest.fixture
def counted(redis_url, prefix, r):
    for script in (scripts.ADMIN_RETRY, scripts.ADMIN_CANCEL, scripts.ADMIN_PAUSE,
                   scripts.ADMIN_RESUME, scripts.ADMIN_DELETE, scripts.ADMIN_RESTORE):
        r.script_load(script.source)  # warm: an action's first EVALSHA may load it
    with remq_at(redis_url, prefix):
        conn = get_sdk().conn
        for client in {id(c): c for c in (conn.sync, conn.raw_sync)}.values():
            # both the decoding client and the one that reads records as bytes
            client.connection_pool.connection_class = CountingConnection
            client.connection_pool.reset()
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


#: The most round trips any page may make (the cross-queue listing is the costliest); the
#: queues page and a queue's jobs page read their trend chart and durations in one more.
BOUND = {"queues": 4, "jobs": 5, "jobs one queue": 4, "jobs deep page": 4, "jobs search": 5,
         "job": 1, "dead letters": 2, "workers": 4, "live jobs": 4}


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


def posted_round_trips(client, url: str, data: dict[str, str]) -> int:
    CountingConnection.sent = 0
    assert client.post(url, data).status_code == 302, url
    return CountingConnection.sent


def act(client, job_id: str, action: str) -> int:
    """Round trips of a one-job action posted on the admin (confirmed)."""
    url = reverse("remq_admin:job_action", args=["default", job_id, action])
    return posted_round_trips(client, url, {"confirm": "yes"})


#: Round trips of one admin action on a queue without priority lanes: the script alone
#: (a requeue from the DLQ reads the entry first). Each was one more while the Sdk read
#: the queue's lanes registry before every action.
ACTION_TRIPS = {"retry": 1, "cancel": 1, "delete": 1, "pause": 1, "resume": 1, "requeue": 2}


def test_an_admin_action_costs_the_script_alone(admin_client, counted, redis_url, prefix):
    ids = make_jobs(redis_url, prefix)
    admin_client.get(reverse("remq_admin:queues"))  # warm: connection made
    [letter] = get_sdk().list_dlq()
    trips = {"pause": act(admin_client, ids["waiting"], "pause"),
             "resume": act(admin_client, ids["waiting"], "resume"),
             "cancel": act(admin_client, ids["delayed"], "cancel"),
             "retry": act(admin_client, ids["cancelled"], "retry"),
             "delete": act(admin_client, ids["completed"], "delete"),
             "requeue": posted_round_trips(admin_client, reverse(
                 "remq_admin:dead_letters_action"), {"only": f"requeue:{letter.entry_id}"})}
    assert trips == ACTION_TRIPS
    sdk = get_sdk()
    assert [sdk.get_job(ids[k], "default").status for k in  # type: ignore[union-attr]
            ("waiting", "delayed", "cancelled", "failed")] == ["waiting", "cancelled",
                                                               "waiting", "waiting"]
    assert sdk.get_job(ids["completed"], "default") is None


def test_a_lane_costs_one_more_trip_the_first_time_the_sdk_meets_it(admin_client, counted,
                                                                     redis_url, prefix, r):
    tm = TaskManager.init(db=redis_url, prefix=prefix)
    first, second = (tm.emit("send-email", options={"priority": 7}) for _ in range(2))
    low = tm.emit("send-email", options={"priority": -3})
    tm.conn.close()
    admin_client.get(reverse("remq_admin:queues"))  # warm: connection made
    trips = [act(admin_client, first, "pause"), act(admin_client, second, "pause"),
             act(admin_client, first, "resume"), act(admin_client, low, "cancel"),
             act(admin_client, second, "delete")]
    assert trips == [2, 1, 1, 2, 1]
    qk = Keys(prefix).queue("default")
    assert [r.xlen(qk.lane(p)) for p in (7, -3, 0)] == [1, 0, 0]  # first, back on its lane
    assert [r.hget(qk.job(j), "status") for j in (first, second, low)] == [
        "waiting", None, "cancelled"]
