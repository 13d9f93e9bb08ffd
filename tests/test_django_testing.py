"""``django_remq.testing`` as a user would use it in their own tests."""

from __future__ import annotations

import time

import pytest

from django_remq import emit, get_task_manager
from django_remq.testing import RemqTestEnv

pytestmark = pytest.mark.redis


def test_run_until_idle_runs_retries_and_delays(remq: RemqTestEnv) -> None:
    flaky = emit("alpha.flaky", queue="alpha")  # fails once, retried after 300 ms
    later = emit("alpha.echo", data="later", queue="alpha", options={"delay_ms": 400})
    now = emit("beta.greet", data="bo")
    started = time.monotonic()
    remq.run_until_idle(timeout=10)
    assert time.monotonic() - started >= 0.3
    flaky_job = remq.get_job(flaky, "alpha")
    assert flaky_job is not None
    assert (flaky_job.status, flaky_job.result, flaky_job.retried_attempts) == ("completed", 2, 1)
    assert flaky_job.errors[0].message == "first attempt fails"
    assert remq.get_job(later, "alpha").result == {"got": "later"}  # type: ignore[union-attr]
    assert remq.get_job(now, "beta").result == "hello bo"  # type: ignore[union-attr]


def test_run_until_idle_is_bounded(remq: RemqTestEnv) -> None:
    emit("alpha.echo", queue="alpha", options={"delay_ms": 60_000})
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="due in"):
        remq.run_until_idle(timeout=1)
    assert time.monotonic() - started < 2


def test_run_until_idle_times_out_on_a_task_that_does_not_end(remq: RemqTestEnv) -> None:
    job_id = emit("alpha.slow", data={"seconds": 1.0}, queue="alpha")
    with pytest.raises(TimeoutError, match="still had work"):
        remq.run_until_idle(timeout=0.3, queues=["alpha"])
    # stopping is graceful: the running task was allowed to finish
    assert remq.get_job(job_id, "alpha").status == "completed"  # type: ignore[union-attr]


def test_each_test_gets_its_own_prefix(remq: RemqTestEnv) -> None:
    assert remq.prefix.startswith("remqtest-")
    assert get_task_manager().keys.prefix == remq.prefix


def test_fake_redis_needs_no_server(remq_fake: RemqTestEnv) -> None:
    assert "127.0.0.1" in remq_fake.redis_url
    job = emit("alpha_double", data=5, queue="alpha")
    remq_fake.run_until_idle(queues=["alpha"])
    assert remq_fake.get_job(job, "alpha").result == 10  # type: ignore[union-attr]
