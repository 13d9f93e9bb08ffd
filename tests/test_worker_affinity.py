"""``CPU_AFFINITY`` / ``runworker_remq --cpu-affinity``: each worker process pinned to
one CPU, checked on real worker processes through /proc."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from django_remq import emit
from django_remq.conf import problems
from django_remq.core.worker import affinity
from django_remq.testing import RemqTestEnv, remq_test_settings

from .test_django_processes import finish, supervisor, wait_for, workers

pytestmark = pytest.mark.processes

ALLOWED = sorted(os.sched_getaffinity(0))


@pytest.fixture
def env(redis_url: str) -> Iterator[RemqTestEnv]:
    with remq_test_settings(redis_url) as test_env:
        yield test_env


def masks_of(pid: int) -> list[frozenset[int]]:
    """Each thread's CPU set."""
    found = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            found.append(frozenset(os.sched_getaffinity(int(tid))))
        except ProcessLookupError:
            continue
    return found


def cpus_of(pid: int) -> set[frozenset[int]]:
    """The CPU sets the threads of ``pid`` may run on (one per distinct set)."""
    return set(masks_of(pid))


@contextmanager
def worker(test_env: RemqTestEnv, *args: str, **extra: str) -> Iterator[subprocess.Popen[str]]:
    """``runworker_remq --queues alpha ARGS`` running; killed on the way out if a check
    failed before it was stopped."""
    proc = supervisor(test_env, *args, **extra)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def stopped(proc: subprocess.Popen[str]) -> str:
    """SIGTERM the worker, wait for it to exit 0, and return what it printed."""
    proc.send_signal(signal.SIGTERM)
    out, err = finish(proc, 60)
    assert proc.returncode == 0, err
    return out


def test_the_cpu_of_each_worker_process() -> None:
    assert affinity.parse("none") is None
    assert affinity.parse("") is None
    assert affinity.parse("auto") == "auto"
    assert affinity.parse("Threads") == "threads"
    assert affinity.cpus_for("threads", 2) is None  # no whole process is pinned
    assert affinity.parse("0, 2") == (0, 2)
    assert affinity.cpu_for(None, 1) is None
    assert [affinity.cpu_for("auto", i) for i in (1, 2, len(ALLOWED) + 1)] == [
        ALLOWED[0], ALLOWED[1 % len(ALLOWED)], ALLOWED[0]]  # taken in turn, round
    assert affinity.cpu_for([ALLOWED[-1]], 3) == ALLOWED[-1]
    assert affinity.cpus_for(None, 2) is None
    assert affinity.cpus_for("auto", len(ALLOWED) + 1) == [*ALLOWED, ALLOWED[0]]


@pytest.mark.parametrize("text", ["x", "-1", "0,,1", "1.5"])
def test_a_bad_cli_value_says_what_to_give(text: str) -> None:
    with pytest.raises(ValueError, match="give 'threads', 'auto', 'none' or CPU numbers"):
        affinity.parse(text)


def test_a_cpu_this_process_may_not_use_is_refused_with_the_allowed_ones() -> None:
    outside = max(ALLOWED) + 1
    with pytest.raises(ValueError, match=rf"CPU {outside} is not one this process may run "
                                         rf"on \(allowed: {ALLOWED[0]}"):
        affinity.cpu_for([outside], 1)


@pytest.mark.parametrize("value", ["always", [], [0, -1], [True], [0.5]])
def test_the_setting_is_checked(value: object) -> None:
    found = problems({"CPU_AFFINITY": value}, import_paths=False)
    assert [p.id for p in found] in (["remq.E008"], ["remq.E003"]), found
    assert "CPU_AFFINITY" in found[0].msg


def test_the_command_refuses_a_cpu_it_may_not_use(env: RemqTestEnv) -> None:
    with pytest.raises(CommandError, match="is not one this process may run on"):
        call_command("runworker_remq", "--cpu-affinity", str(max(ALLOWED) + 1), "--burst")


def test_a_pinned_worker_runs_every_thread_on_its_cpu(env: RemqTestEnv) -> None:
    """Every thread of the worker, the sync handlers' slot threads included (started
    after the pin), runs on the CPU given."""
    cpu = ALLOWED[-1]
    with worker(env, "--cpu-affinity", str(cpu), "--concurrency", "4") as proc:
        wait_for("the worker", lambda: len(workers(env)) == 1, proc)
        jobs = [emit("alpha.echo", data=i, queue="alpha") for i in range(8)]  # sync handler
        wait_for("the jobs", lambda: all(
            getattr(env.get_job(j, "alpha"), "status", None) == "completed" for j in jobs),
            proc)
        assert len(os.listdir(f"/proc/{proc.pid}/task")) > 4  # the slot threads exist
        assert cpus_of(proc.pid) == {frozenset({cpu})}
        out = stopped(proc)
    assert f"pinned to CPU {cpu}" in out
    assert "tip:" not in out  # pinned already: no advice


def test_auto_puts_each_supervised_process_on_its_own_cpu(env: RemqTestEnv) -> None:
    with worker(env, "--processes", "2", "--cpu-affinity", "auto") as proc:
        wait_for("two registered workers", lambda: len(workers(env)) == 2, proc)
        per_child = [cpus_of(w.pid) for w in workers(env)]
        assert [len(c) for c in per_child] == [1, 1]  # all threads of a child on one CPU
        # Sets, not sorted lists: frozensets order by inclusion, so sorted() of them is
        # whatever order they came in.
        assert set.union(*per_child) == {
            frozenset({affinity.cpu_for("auto", i)}) for i in (1, 2)}
        assert cpus_of(proc.pid) == {frozenset(ALLOWED)}  # the supervisor is not pinned
        out = stopped(proc)
    assert out.count("pinned to CPU") == 2


def test_the_setting_pins_a_worker_too(env: RemqTestEnv) -> None:
    """REMQ['CPU_AFFINITY'] = [cpu] (tests/django_settings_worker.py sets it from the
    environment), no command-line option."""
    cpu = ALLOWED[0]
    with worker(env, REMQ_TEST_CPU_AFFINITY=str(cpu)) as proc:
        wait_for("the worker", lambda: len(workers(env)) == 1, proc)
        assert cpus_of(proc.pid) == {frozenset({cpu})}
        out = stopped(proc)
    assert f"pinned to CPU {cpu}" in out


def run_sync_jobs(env: RemqTestEnv, proc: subprocess.Popen[str], n: int = 8) -> None:
    jobs = [emit("alpha.echo", data=i, queue="alpha") for i in range(n)]  # sync handler
    wait_for("the jobs", lambda: all(
        getattr(env.get_job(j, "alpha"), "status", None) == "completed" for j in jobs), proc)


def test_by_default_the_loop_and_slot_threads_share_a_core(env: RemqTestEnv,
                                                           tmp_path: Path) -> None:
    """CPU_AFFINITY's default, "threads": the loop and the 4 slot threads on one CPU, the
    one whose lock the worker holds (TMPDIR: a lock folder of the test's own)."""
    with worker(env, "--concurrency", "4", TMPDIR=str(tmp_path)) as proc:
        wait_for("the worker", lambda: len(workers(env)) == 1, proc)
        run_sync_jobs(env, proc)
        locks = sorted(p.name for p in (tmp_path / "django-remq-cpus").iterdir())
        assert len(locks) == 1
        cpu = int(locks[0].removeprefix("cpu-").removesuffix(".lock"))
        masks = masks_of(proc.pid)
        assert masks.count(frozenset({cpu})) >= 5, masks  # the loop's + the slot threads
        assert set(masks) <= {frozenset({cpu}), frozenset(ALLOWED)}
        stopped(proc)


def test_each_supervised_process_claims_its_own_core(env: RemqTestEnv,
                                                     tmp_path: Path) -> None:
    with worker(env, "--processes", "2", "--concurrency", "2", TMPDIR=str(tmp_path)) as proc:
        wait_for("two registered workers", lambda: len(workers(env)) == 2, proc)
        jobs = [emit("alpha.slow", data={"seconds": 1}, queue="alpha") for _ in range(4)]
        wait_for("the jobs", lambda: all(  # 2 slots each: both processes run some
            getattr(env.get_job(j, "alpha"), "status", None) == "completed" for j in jobs),
            proc)
        pinned = [{m for m in masks_of(w.pid) if len(m) == 1} for w in workers(env)]
        assert all(len(p) == 1 for p in pinned), pinned
        assert pinned[0] != pinned[1]  # different cores
        stopped(proc)


def test_none_leaves_every_thread_on_every_cpu(env: RemqTestEnv, tmp_path: Path) -> None:
    with worker(env, "--cpu-affinity", "none", TMPDIR=str(tmp_path)) as proc:
        wait_for("the worker", lambda: len(workers(env)) == 1, proc)
        run_sync_jobs(env, proc)
        assert set(masks_of(proc.pid)) == {frozenset(ALLOWED)}
        stopped(proc)
    assert not (tmp_path / "django-remq-cpus").exists()
