"""The Prometheus metrics: RemqCollector read through the view, as a scraper reads it
(prometheus_client's own parser), after real jobs run by a real worker; who may read it;
the METRICS setting's checks."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from django_remq.conf import problems
from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk
from django_remq.metrics import RemqCollector

from .admin_support import PROCESSOR, remq_at, worker_thread

pytestmark = pytest.mark.redis

URL = "/remq/metrics/"
TOKEN = "s3cret-token-for-the-scraper"


@pytest.fixture
def remq(redis_url, prefix):
    with remq_at(redis_url, prefix, METRICS={"TOKEN": TOKEN}), \
            override_settings(ROOT_URLCONF="tests.urls_metrics"):
        yield


def parse(text: str) -> dict[str, list]:
    """name -> samples (the family's name, as the parser gives it)."""
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(samples, name, **labels) -> float:
    found = [s.value for s in samples if s.name == name
             and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def test_scrape_after_a_real_worker_ran_jobs(remq, admin_client, redis_url, prefix):
    tm = TaskManager.init(db=redis_url, prefix=prefix, processor=PROCESSOR,  # type: ignore[arg-type]
                          concurrency=4)
    hold = threading.Event()

    async def ok(task, ctx):
        await asyncio.sleep(0.03)

    async def bad(task, ctx):
        raise RuntimeError("boom")

    async def wait(task, ctx):
        while not hold.is_set():
            await asyncio.sleep(0.01)

    tm.register_handler("ok", ok, queue="mail")
    tm.register_handler("bad", bad, queue="mail", options={"attempts": 0})
    tm.register_handler("wait", wait, queue="slow")
    for i in range(4):
        tm.emit("ok", queue="mail", data={"i": i})
    tm.emit("bad", queue="mail")
    sdk = Sdk(redis_url, prefix=prefix)
    with worker_thread(tm):
        deadline = time.monotonic() + 20
        while sdk.get_queue_stats("mail").completed < 4 or sdk.get_queue_stats("mail").failed < 1:
            assert time.monotonic() < deadline, sdk.get_queue_stats("mail")
            time.sleep(0.02)
        tm.emit("wait", queue="slow")
        while not any(w.running for w in sdk.get_workers()):
            assert time.monotonic() < deadline, "the worker never showed the running job"
            time.sleep(0.05)
        response = admin_client.get(URL)  # a staff session
        hold.set()
    tm.conn.close()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    m = parse(response.content.decode())
    jobs = m["remq_queue_jobs"]
    assert value(jobs, "remq_queue_jobs", queue="mail", status="completed") == 4
    assert value(jobs, "remq_queue_jobs", queue="mail", status="failed") == 1
    assert value(jobs, "remq_queue_jobs", queue="slow", status="processing") == 1
    finished = m["remq_jobs_finished"]
    assert value(finished, "remq_jobs_finished_total", queue="mail", status="completed") == 4
    assert value(finished, "remq_jobs_finished_total", queue="mail", status="failed") == 1
    assert value(finished, "remq_jobs_finished_total", queue="slow", status="completed") == 0
    assert value(m["remq_dead_letters"], "remq_dead_letters", queue="mail") == 1
    runs = m["remq_job_run_seconds"]
    assert value(runs, "remq_job_run_seconds_count", queue="mail") == 5
    assert value(runs, "remq_job_run_seconds_sum", queue="mail") >= 4 * 0.03
    assert value(runs, "remq_job_run_seconds_bucket", queue="mail", le="+Inf") == 5
    # the four 30 ms runs are above 25 ms: at most the failed run is in the 25 ms bucket
    assert value(runs, "remq_job_run_seconds_bucket", queue="mail", le="0.025") <= 1
    assert value(m["remq_workers"], "remq_workers") == 1
    slots = m["remq_worker_slots"]
    assert value(slots, "remq_worker_slots", state="busy") == 1
    assert value(slots, "remq_worker_slots", state="idle") == 3
    assert value(m["remq_queue_oldest_waiting_seconds"], "remq_queue_oldest_waiting_seconds",
                 queue="mail") == 0


def test_the_token_opens_it_and_nothing_else_does(remq, client, django_user_model):
    assert client.get(URL).status_code == 401
    assert client.get(URL)["WWW-Authenticate"].startswith("Bearer")
    assert client.get(URL, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(URL, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    plain = django_user_model.objects.create_user("plain", password="pw")
    client.force_login(plain)
    assert client.get(URL).status_code == 401  # a session, but not staff
    client.logout()
    ok = client.get(URL, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert "remq_workers" in parse(ok.content.decode())
    assert client.post(URL, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


def test_without_a_token_only_staff(redis_url, prefix, client):
    with remq_at(redis_url, prefix), override_settings(ROOT_URLCONF="tests.urls_metrics"):
        response = client.get(URL, headers={"Authorization": "Bearer anything-at-all-long"})
        assert response.status_code == 401
        assert "WWW-Authenticate" not in response


def test_redis_down_is_a_503(admin_client, prefix):
    with remq_at("redis://127.0.0.1:1/0", prefix), \
            override_settings(ROOT_URLCONF="tests.urls_metrics"):
        response = admin_client.get(URL)
    assert response.status_code == 503
    assert b"not reachable" in response.content


def test_collector_on_a_registry_of_ones_own(redis_url, prefix):
    from prometheus_client import CollectorRegistry, generate_latest

    TaskManager.init(db=redis_url, prefix=prefix).emit("x", queue="q1")
    registry = CollectorRegistry()
    registry.register(RemqCollector(Sdk(redis_url, prefix=prefix)))
    m = parse(generate_latest(registry).decode())
    assert value(m["remq_queue_jobs"], "remq_queue_jobs", queue="q1", status="waiting") == 1
    assert value(m["remq_workers"], "remq_workers") == 0
    assert value(m["remq_jobs_finished"], "remq_jobs_finished_total", queue="q1",
                 status="failed") == 0


@pytest.mark.parametrize(("metrics", "says"), [
    ({"TOKEN": "short"}, "at least 16 characters"),
    ({"TOKEN": 12345678901234567}, "got int"),
    ({"TOKEN": " padded-token-of-enough-length "}, "without surrounding spaces"),
    ({"TOKEN": "x" * 20, "PUBLIC": True}, "unknown key 'PUBLIC'"),
])
def test_bad_metrics_settings_are_named(metrics, says):
    found = problems({"METRICS": metrics}, import_paths=False)
    assert [p.id for p in found] == ["remq.E050"]
    assert says in found[0].msg
    assert "token_urlsafe" in (found[0].hint or "")
    assert problems({"METRICS": {"TOKEN": "x" * 16}}, import_paths=False) == []
    assert problems({"METRICS": None}, import_paths=False) == []
    assert [p.id for p in problems({"METRICS": "tok"}, import_paths=False)] == ["remq.E003"]


def test_without_the_extra_the_import_says_what_to_install():
    code = ("import sys; sys.modules['prometheus_client'] = None\n"
            "try:\n    import django_remq.metrics\n"
            "except ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert "pip install 'django-remq[metrics]'" in out.stdout, out.stderr


def deny(request):
    return False


def test_admin_permission_applies_to_staff_but_not_to_the_token(redis_url, prefix, admin_client,
                                                                client):
    with remq_at(redis_url, prefix, ADMIN_PERMISSION="tests.test_metrics.deny",
                 METRICS={"TOKEN": TOKEN}), override_settings(ROOT_URLCONF="tests.urls_metrics"):
        assert admin_client.get(URL).status_code == 401
        ok = client.get(URL, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
