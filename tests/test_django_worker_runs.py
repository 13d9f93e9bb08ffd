"""What ``runworker_remq`` says about each task, and how it recovers from stuck sync
handlers: a real worker subprocess against the real Redis."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from django_remq import emit
from django_remq.testing import RemqTestEnv, remq_test_settings

from .workers import ROOT, worker_env

pytestmark = pytest.mark.processes


@pytest.fixture
def env(redis_url: str) -> Iterator[RemqTestEnv]:
    with remq_test_settings(redis_url) as test_env:
        yield test_env


def worker(test_env: RemqTestEnv, *args: str) -> subprocess.Popen[str]:
    environ = worker_env(test_env)
    return subprocess.Popen([sys.executable, "-m", "django", "runworker_remq", *args],
                            env=environ, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def test_verbosity_2_logs_each_task_start_and_end(env: RemqTestEnv) -> None:
    job = emit("alpha.echo", data={"n": 1}, queue="alpha")
    proc = worker(env, "--burst", "--queues", "alpha", "-v", "2")
    _, err = finish(proc)
    assert proc.returncode == 0, err
    assert f"task started: alpha.echo {job} (queue alpha, attempt 1)" in err
    ended = next(line for line in err.splitlines() if f"task ended: alpha.echo {job}" in line)
    assert ended.endswith(" ms")
    assert " completed in " in ended


def test_default_verbosity_logs_failures_and_retries_only(env: RemqTestEnv) -> None:
    ok = emit("alpha.echo", data={"n": 1}, queue="alpha")
    flaky = emit("alpha.flaky", queue="alpha")
    proc = worker(env, "--burst", "--queues", "alpha")
    _, err = finish(proc)
    assert proc.returncode == 0, err
    assert f"job {flaky} (alpha.flaky) failed, retrying" in err
    assert ok not in err
    assert "task started" not in err


def test_stuck_sync_handlers_make_the_worker_restart_itself(env: RemqTestEnv) -> None:
    stuck = [emit("alpha.stuck", queue="alpha") for _ in range(2)]
    proc = worker(env, "--queues", "alpha", "--concurrency", "1")
    try:
        deadline = time.monotonic() + 60
        later = None
        while True:
            assert time.monotonic() < deadline, "the stuck tasks never timed out"
            assert proc.poll() is None
            if all(env.get_job(j, "alpha").status == "failed" for j in stuck):  # type: ignore
                break
            time.sleep(0.1)
        later = emit("alpha.echo", data="after", queue="alpha")
        while (record := env.get_job(later, "alpha")) is None or record.status != "completed":
            assert time.monotonic() < deadline, "the restarted worker did not run new work"
            assert proc.poll() is None
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = finish(proc, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "2 sync handlers are still running past their timeout_ms" in err
    assert "restarting this worker" in err
    assert out.count("remq worker: Redis") == 2  # the same command, started again
