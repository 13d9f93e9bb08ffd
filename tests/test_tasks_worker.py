"""Django tasks run by ``runworker_remq --burst`` in a real subprocess (no extra flag),
results read from this process; signals and context in-process on the real engine."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.utils import timezone

from django_remq import Sdk
from django_remq.backends import RemqBackend
from django_remq.backends.compat import (
    TaskResultStatus,
    task_backends,
    task_finished,
    task_started,
)
from django_remq.testing import RemqTestEnv, remq_test_settings
from tests.remq_apps.dtasks import tasks as t
from tests.workers import manage, run, worker_env

pytestmark = pytest.mark.processes


@pytest.fixture
def env(redis_url: str) -> Iterator[RemqTestEnv]:
    with remq_test_settings(redis_url) as test_env:
        yield test_env


def burst(env: RemqTestEnv, *extra: str) -> Any:
    proc = run(manage("--burst", *extra), worker_env(env), timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc


def result(task_result: Any) -> Any:
    return task_backends["default"].get_result(task_result.id)


def test_worker_runs_django_tasks_with_no_extra_flag(env: RemqTestEnv) -> None:
    ok = t.echo.enqueue(1, (2, 3), key="v")
    summed = t.add.enqueue(20, 22)
    proc = burst(env)  # serves TASKS' queues by default, next to the @handler queues
    assert "dtasks" in proc.stdout.splitlines()[1]
    done = result(ok)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.is_finished
    assert done.return_value["args"] == [1, [2, 3]]  # normalised like the framework does
    assert done.return_value["kwargs"] == {"key": "v"}
    assert done.return_value["thread"].startswith("remq-task")  # sync: the worker's threads
    assert result(summed).return_value == 42
    assert done.attempts == 1
    record = Sdk().get_job(ok.id, "dtasks")
    assert record is not None
    assert done.worker_ids == [record.worker]  # the remq worker id, as in Sdk.get_workers
    assert done.enqueued_at <= done.started_at <= done.last_attempted_at <= done.finished_at
    assert done.errors == []


def test_failures_keep_the_exception_class_and_traceback(env: RemqTestEnv) -> None:
    failed = t.failing.enqueue()
    exited = t.exits.enqueue()
    bad_return = t.complex_return.enqueue()
    async_failed = t.async_failing.enqueue()
    burst(env, "--queues", "dtasks")
    for task_result, exc_type, text in (
            (failed, ValueError, "ValueError: This task failed due to ValueError\n"),
            (exited, SystemExit, "SystemExit: This task failed due to SystemExit\n"),
            (bad_return, TypeError, "Unsupported type"),
            (async_failed, KeyError, "KeyError: 'async failure'\n")):
        done = result(task_result)
        assert done.status == TaskResultStatus.FAILED, task_result.task
        with pytest.raises(ValueError, match="Task failed"):
            _ = done.return_value
        assert len(done.errors) == 1
        assert done.errors[0].exception_class is exc_type
        assert text in done.errors[0].traceback
        assert done.finished_at is not None
        assert done.attempts == 1
    tb = result(failed).errors[0].traceback
    assert tb.startswith("Traceback (most recent call last):")
    assert tb.endswith("ValueError: This task failed due to ValueError\n")


def test_async_tasks_run_natively_on_the_workers_loop(env: RemqTestEnv) -> None:
    done = t.async_echo.enqueue({"x": 1})
    burst(env, "--queues", "dtasks")
    value = result(done).return_value
    assert value == {"value": {"x": 1}, "thread": "MainThread"}


def test_context_and_retries_count_attempts(env: RemqTestEnv) -> None:
    ctx = t.with_context.enqueue(5)
    flaky = t.flaky.enqueue()  # attempts=2 on @task: the first run fails, the retry succeeds
    burst(env, "--queues", "dtasks")
    first = result(ctx)
    assert first.return_value["attempt"] == 1
    assert first.return_value["id"] == ctx.id
    assert first.return_value["n"] == 5
    assert first.return_value["status"] == "RUNNING"
    assert first.return_value["worker_ids"] == first.worker_ids
    retried = result(flaky)
    assert retried.status == TaskResultStatus.SUCCESSFUL
    assert retried.return_value == {"attempt": 2, "errors": 1}
    assert retried.attempts == 2
    assert [e.exception_class for e in retried.errors] == [RuntimeError]
    assert retried.started_at < retried.last_attempted_at


def test_timeout_ms_on_the_task_fails_it(env: RemqTestEnv) -> None:
    slow = t.too_slow.enqueue()
    burst(env, "--queues", "dtasks")
    done = result(slow)
    assert done.status == TaskResultStatus.FAILED
    assert done.errors[0].exception_class_path == "django_remq.core.errors.TaskTimeout"


def test_run_after_defers_the_task(env: RemqTestEnv) -> None:
    when = timezone.now() + timedelta(seconds=1)
    soon = t.add.using(run_after=when).enqueue(1, 1)
    later = t.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(2, 2)
    time.sleep(max((when - timezone.now()).total_seconds(), 0) + 0.2)
    burst(env, "--queues", "dtasks")
    done = result(soon)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.started_at >= when - timedelta(milliseconds=5)
    waiting = result(later)
    assert waiting.status == TaskResultStatus.READY  # not due: still a delayed job
    assert Sdk().get_job(later.id, "dtasks").status == "delayed"  # type: ignore[union-attr]


def test_running_status_is_visible_from_another_process(env: RemqTestEnv) -> None:
    import subprocess

    slow = t.sleeps.enqueue(3)
    proc = subprocess.Popen(manage("--burst", "--queues", "dtasks"), env=worker_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while (seen := result(slow)).status != TaskResultStatus.RUNNING:
            assert time.monotonic() < deadline, "the worker never started the task"
            time.sleep(0.05)
        assert seen.started_at is not None
        assert seen.finished_at is None
        assert len(seen.worker_ids) == 1
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert result(slow).return_value == "slept"


def test_signals_fire_in_the_worker(redis_url: str) -> None:
    with remq_test_settings(redis_url, concurrency=1) as env:  # one task after the other
        signals_fire_in_the_worker(env)


def signals_fire_in_the_worker(env: RemqTestEnv) -> None:
    seen: list[Any] = []
    threads: list[str] = []

    def on_started(sender: Any, task_result: Any, **kwargs: Any) -> None:
        seen.append(("started", sender, task_result.id, task_result.status,
                     task_result.attempts))
        threads.append(threading.current_thread().name)

    def on_finished(sender: Any, task_result: Any, **kwargs: Any) -> None:
        seen.append(("finished", sender, task_result.id, task_result.status,
                     task_result.attempts))
        threads.append(threading.current_thread().name)

    task_started.connect(on_started)
    task_finished.connect(on_finished)
    try:
        ok = t.add.enqueue(1, 2)
        env.run_until_idle(queues=["dtasks"])  # the real engine, in this process
        bad = t.async_failing.enqueue()
        good = t.async_echo.enqueue(1)
        env.run_until_idle(queues=["dtasks"], timeout=20)
    finally:
        task_started.disconnect(on_started)
        task_finished.disconnect(on_finished)
    R, F, S = TaskResultStatus.RUNNING, TaskResultStatus.FAILED, TaskResultStatus.SUCCESSFUL
    assert seen == [  # concurrency 1: one task after the other, in order
        ("started", RemqBackend, ok.id, R, 1), ("finished", RemqBackend, ok.id, S, 1),
        ("started", RemqBackend, bad.id, R, 1), ("finished", RemqBackend, bad.id, F, 1),
        ("started", RemqBackend, good.id, R, 1), ("finished", RemqBackend, good.id, S, 1)]
    # sync receivers may use the ORM: never called on the worker's event loop (this thread)
    assert threading.current_thread().name not in threads


def test_django_tasks_show_in_the_sdk_and_cli(env: RemqTestEnv) -> None:
    done = t.add.enqueue(2, 2)
    failed = t.failing.enqueue()
    burst(env, "--queues", "dtasks")
    jobs = Sdk().list_jobs(queue="dtasks", status="completed")
    assert [(j.id, j.state.name, j.result) for j in jobs] == [
        (done.id, "tests.remq_apps.dtasks.tasks.add", 4)]
    proc = run([sys.executable, "-m", "django", "remq", "show", failed.id, "--queue", "dtasks"],
               worker_env(env))
    assert proc.returncode == 0, proc.stderr
    assert "tests.remq_apps.dtasks.tasks.failing" in proc.stdout
    assert "status: failed" in proc.stdout
    worker = result(failed).worker_ids[0]
    assert f"django task: attempt 1 on worker {worker} (started " in proc.stdout
    assert "failed with builtins.ValueError: This task failed due to ValueError" in proc.stdout


def test_an_event_naming_something_else_is_never_called(env: RemqTestEnv) -> None:
    from django_remq import emit
    from django_remq.errors import UnknownEventWarning

    # a worker resolves task paths in its TASKS queues: only a RemqBackend task qualifies
    with pytest.warns(UnknownEventWarning):
        not_task = emit("tests.remq_apps.dtasks.tasks._one_key", data={"args": []},
                        queue="dtasks")
    with pytest.warns(UnknownEventWarning):
        stdlib = emit("os.getcwd", queue="dtasks")
    env.run_until_idle(queues=["dtasks"])
    for job_id in (not_task, stdlib):
        job = Sdk().get_job(job_id, "dtasks")
        assert job is not None
        assert job.status == "failed"
        assert job.errors[0].type == "UnknownEvent"


def test_a_cancelled_task_reads_as_failed_with_the_reason(env: RemqTestEnv) -> None:
    waiting = t.add.enqueue(1, 2)
    assert Sdk().cancel_job(waiting.id, "dtasks")
    done = result(waiting)
    assert done.status == TaskResultStatus.FAILED
    assert done.errors[0].exception_class_path == "django_remq.core.errors.JobCancelled"


def test_the_worker_banner_lists_the_imported_tasks(env: RemqTestEnv) -> None:
    from django_remq.api import build_task_manager
    from django_remq.worker import banner

    tm = build_task_manager()
    try:
        assert {"dtasks", "dtasks-other"} <= set(tm.queues)  # TASKS["default"]["QUEUES"]
        lines = banner(tm, ["dtasks"], burst=True)
    finally:
        tm.conn.close()
    assert "  dtasks: tests.remq_apps.dtasks.tasks.add -> tests.remq_apps.dtasks.tasks.add" \
        in lines


def test_priority_orders_the_queue_fifo_within_a_priority(env: RemqTestEnv) -> None:
    """100 tasks at mixed priorities, enqueued with no worker running, then drained by
    ``runworker_remq --burst --concurrency 1``: higher priority first, FIFO within one."""
    rng = random.Random(7)
    priorities = [rng.choice([-100, -20, 0, 0, 5, 60, 100]) for _ in range(100)]
    results = [t.ordered.using(priority=p).enqueue(n) for n, p in enumerate(priorities)]
    burst(env, "--queues", "dtasks", "--concurrency", "1")
    client = redis.Redis.from_url(env.redis_url, decode_responses=True)
    order = [int(n) for n in client.lrange(f"{env.prefix}:order", 0, -1)]
    client.close()
    assert order == sorted(range(100), key=lambda n: (-priorities[n], n))
    assert result(results[0]).task.priority == priorities[0]
    assert all(result(r).status == TaskResultStatus.SUCCESSFUL for r in results[:5])
