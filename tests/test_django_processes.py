"""``runworker_remq --processes N``: a supervisor and real worker subprocesses against
the real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from django_remq import emit
from django_remq.core.sdk import Sdk
from django_remq.core.types import WorkerInfo
from django_remq.supervisor import restart_delay
from django_remq.testing import RemqTestEnv, remq_test_settings

from .workers import ROOT, worker_env

pytestmark = pytest.mark.processes


@pytest.fixture
def env(redis_url: str) -> Iterator[RemqTestEnv]:
    with remq_test_settings(redis_url) as test_env:
        yield test_env


def supervisor(test_env: RemqTestEnv, *args: str, **extra: str) -> subprocess.Popen[str]:
    """``runworker_remq --queues alpha ARGS``; ``extra``: more environment variables."""
    environ = worker_env(test_env, **extra)
    return subprocess.Popen([sys.executable, "-m", "django", "runworker_remq", "--queues",
                             "alpha", *args], env=environ, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 90) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)


def wait_for(what: str, check: Callable[[], bool], proc: subprocess.Popen[str],
             timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"the supervisor exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def workers(test_env: RemqTestEnv) -> list[WorkerInfo]:
    return Sdk(test_env.redis_url, prefix=test_env.prefix).get_workers()


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that PID 1 may never be counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def test_two_processes_share_the_work_and_sigterm_stops_both_losing_nothing(
        env: RemqTestEnv) -> None:
    jobs = [emit("alpha.slow", data={"seconds": 0.2}, queue="alpha") for _ in range(60)]
    proc = supervisor(env, "--processes", "2", "--concurrency", "2",
                      "--shutdown-timeout", "20")
    try:
        wait_for("two registered workers", lambda: len(workers(env)) == 2, proc)
        pids = {w.pid for w in workers(env)}
        assert len(pids) == 2
        assert proc.pid not in pids  # two children, not the supervisor

        def ran_on_both() -> bool:
            records = [env.get_job(j, "alpha") for j in jobs]
            return len({r.worker for r in records if r and r.status == "completed"}) == 2
        wait_for("completed jobs from both workers", ran_on_both, proc)
        proc.send_signal(signal.SIGTERM)
        out, err = finish(proc, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopping 2 worker processes" in err
    assert out.count("remq worker: Redis") == 2
    assert "remq supervisor stopped" in out
    assert not any(alive(pid) for pid in pids)
    statuses = {j: env.get_job(j, "alpha").status for j in jobs}  # type: ignore[union-attr]
    assert set(statuses.values()) <= {"completed", "waiting"}, statuses
    assert "waiting" in statuses.values()  # stopped mid-queue: the rest waits, unlost
    assert workers(env) == []  # both left the registry


def test_a_killed_worker_process_is_restarted(env: RemqTestEnv) -> None:
    proc = supervisor(env, "--processes", "2")
    try:
        wait_for("two registered workers", lambda: len(workers(env)) == 2, proc)
        first = {w.pid for w in workers(env)}
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        survivor = (first - {victim}).pop()

        def replaced() -> bool:
            now = {w.pid for w in workers(env)}
            return survivor in now and len(now - first) == 1
        wait_for("a new worker process", replaced, proc)
        job = emit("alpha.echo", data="after", queue="alpha")
        wait_for("the job to complete",
                 lambda: getattr(env.get_job(job, "alpha"), "status", None) == "completed", proc)
        proc.send_signal(signal.SIGTERM)
        out, err = finish(proc, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "exited unexpectedly (killed by SIGKILL); restarting it" in err
    assert out.count("remq worker: Redis") == 3  # two, then the replacement


def test_burst_with_two_processes_exits_0_when_the_queues_are_empty(env: RemqTestEnv) -> None:
    jobs = [emit("alpha.echo", data={"n": i}, queue="alpha") for i in range(30)]
    proc = supervisor(env, "--processes", "2", "--burst")
    out, err = finish(proc)
    assert proc.returncode == 0, err
    assert out.count("remq worker: Redis") == 2
    assert all(env.get_job(j, "alpha").status == "completed" for j in jobs)  # type: ignore


def test_a_second_signal_stops_the_worker_processes_now(env: RemqTestEnv) -> None:
    job = emit("alpha.slow", data={"seconds": 120}, queue="alpha")
    proc = supervisor(env, "--processes", "2", "--shutdown-timeout", "120")
    try:
        wait_for("the slow job to start",
                 lambda: getattr(env.get_job(job, "alpha"), "status", None) == "processing",
                 proc)
        proc.send_signal(signal.SIGTERM)
        time.sleep(1)
        assert proc.poll() is None  # the slow task is allowed to finish...
        proc.send_signal(signal.SIGTERM)
        _, err = finish(proc, 30)  # ...until the second signal
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM again: worker processes stop now" in err


def test_processes_is_validated(env: RemqTestEnv) -> None:
    with pytest.raises(CommandError, match="--processes must be 1 or more"):
        call_command("runworker_remq", processes=0)
    with pytest.raises(CommandError, match="run the exposing worker on its own"):
        call_command("runworker_remq", processes=2, expose=8765)
    with pytest.raises(CommandError, match="not from call_command"):
        call_command("runworker_remq", processes=2)


CRASHING = """
import logging, os, signal, sys, threading
from django_remq.supervisor import Supervisor
logging.basicConfig(level=logging.INFO)
threading.Timer(6, os.kill, (os.getpid(), signal.SIGTERM)).start()
sys.exit(Supervisor([sys.executable, "-c", "import sys; sys.exit(3)"], 1).run())
"""


def test_a_child_that_keeps_dying_is_restarted_with_a_growing_delay() -> None:
    proc = subprocess.run([sys.executable, "-c", CRASHING], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    delays = [line.rsplit(" in ", 1)[1] for line in proc.stderr.splitlines()
              if "exited unexpectedly (exit code 3); restarting it in" in line]
    assert delays[:2] == ["0.5 s", "1.0 s"], proc.stderr
    assert "SIGTERM: stopping 1 worker processes" in proc.stderr
    assert proc.returncode == 1  # stopped while the child was down: its last exit was 3


def test_restart_delay_doubles_up_to_a_cap() -> None:
    assert [restart_delay(n) for n in range(9)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0,
                                                    30.0, 30.0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_worker_processes_stop_gracefully_when_the_supervisor_is_killed(
        env: RemqTestEnv) -> None:
    proc = supervisor(env, "--processes", "2")
    pids: set[int] = set()
    try:
        wait_for("two registered workers", lambda: len(workers(env)) == 2, proc)
        pids = {w.pid for w in workers(env)}
        proc.kill()
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 60
        while any(alive(pid) for pid in pids) or workers(env):
            assert time.monotonic() < deadline, "orphaned worker processes kept running"
            time.sleep(0.1)
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
