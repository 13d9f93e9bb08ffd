"""``manage.py runworker_remq`` in a real subprocess against the real Redis."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from django_remq import emit
from django_remq.testing import RemqTestEnv, remq_test_settings

from .workers import ROOT, manage, run, worker_env

pytestmark = pytest.mark.processes


@pytest.fixture
def env(redis_url: str) -> Iterator[RemqTestEnv]:
    with remq_test_settings(redis_url) as test_env:
        yield test_env


def test_burst_processes_emitted_tasks_and_exits_0(env: RemqTestEnv) -> None:
    echo = emit("alpha.echo", data={"n": 1}, queue="alpha")
    double = emit("alpha_double", data=21, queue="alpha")
    greet = emit("beta.greet", data="ada", queue="beta")
    proc = run(manage("--burst", "--queues", "alpha,beta", "--concurrency", "3"),
               worker_env(env))
    assert proc.returncode == 0, proc.stderr
    assert "concurrency 3" in proc.stdout
    assert "queues: alpha, beta" in proc.stdout
    assert "alpha: alpha.echo -> tests.remq_apps.alpha.tasks.echo" in proc.stdout
    jobs = {job_id: env.get_job(job_id, q) for job_id, q in
            ((echo, "alpha"), (double, "alpha"), (greet, "beta"))}
    assert {j.status for j in jobs.values() if j} == {"completed"}
    assert jobs[echo].result == {"got": {"n": 1}}  # type: ignore[union-attr]
    assert jobs[double].result == 42  # type: ignore[union-attr]
    assert jobs[greet].result == "hello ada"  # type: ignore[union-attr]


def test_burst_serves_only_the_queues_asked_for(env: RemqTestEnv) -> None:
    in_beta = emit("beta.greet", data="x", queue="beta")
    proc = run(manage("--burst", "--queues", "alpha"), worker_env(env))
    assert proc.returncode == 0, proc.stderr
    assert env.get_job(in_beta, "beta").status == "waiting"  # type: ignore[union-attr]


def test_no_autodiscover_skips_the_tasks_modules(env: RemqTestEnv) -> None:
    proc = run(manage("--burst", "--queues", "alpha", "--no-autodiscover"), worker_env(env))
    assert proc.returncode == 0, proc.stderr
    assert "none (tasks in these queues will fail" in proc.stdout
    assert "alpha.echo" not in proc.stdout


def test_sync_handlers_get_fresh_db_connections(env: RemqTestEnv, tmp_path: Path) -> None:
    first = emit("alpha.db", queue="alpha")
    second = emit("alpha.db", queue="alpha")
    proc = run(manage("--burst", "--queues", "alpha", "--concurrency", "1"),
               worker_env(env, REMQ_TEST_DB=str(tmp_path / "db.sqlite3")))
    assert proc.returncode == 0, proc.stderr
    # one thread ran both; the first task's connection was closed after it, as in a request
    assert env.get_job(first, "alpha").result == {"was_open": False}  # type: ignore[union-attr]
    assert env.get_job(second, "alpha").result == {"was_open": False}  # type: ignore[union-attr]


def test_sigterm_mid_task_lets_it_finish(env: RemqTestEnv) -> None:
    job = emit("alpha.slow", data={"seconds": 1.5}, queue="alpha")
    proc = subprocess.Popen(manage("--queues", "alpha"), env=worker_env(env), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while (record := env.get_job(job, "alpha")) is None or record.status != "processing":
            assert time.monotonic() < deadline, "the worker never started the task"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "SIGTERM: finishing running tasks" in err
    record = env.get_job(job, "alpha")
    assert record is not None
    assert (record.status, record.result) == ("completed", "finished")
    assert "remq worker stopped" in out


def test_second_signal_stops_at_once(env: RemqTestEnv) -> None:
    job = emit("alpha.slow", data={"seconds": 30}, queue="alpha")
    proc = subprocess.Popen(manage("--queues", "alpha"), env=worker_env(env), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while (record := env.get_job(job, "alpha")) is None or record.status != "processing":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - started < 5
    assert proc.returncode == 128 + signal.SIGINT
    assert "SIGINT again: exiting now" in err
    assert env.get_job(job, "alpha").status == "processing"  # type: ignore[union-attr]


def test_unreachable_redis_gives_a_clear_command_error(env: RemqTestEnv) -> None:
    url = "redis://:sekret@127.0.0.1:1/0"
    proc = run(manage("--burst"), worker_env(env, REMQ_REDIS_URL=url))
    assert proc.returncode == 1
    assert "CommandError" in proc.stderr or "cannot reach Redis" in proc.stderr
    assert "cannot reach Redis at redis://***@127.0.0.1:1/0" in proc.stderr
    assert "redis-server" in proc.stderr
    assert "sekret" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_bad_arguments_are_command_errors(env: RemqTestEnv) -> None:
    proc = run(manage("--burst", "--queues", "a:b"), worker_env(env))
    assert proc.returncode == 1
    assert "--queues: queue name 'a:b'" in proc.stderr
