"""RemqBackend for Django's Tasks framework: decorating, validation, enqueueing and reading
results back, checks (modelled on Django's own tests/tasks). Running the tasks:
tests/test_tasks_worker.py."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import django
import pytest
from django.test import override_settings
from django.utils import timezone

from django_remq import Sdk, emit, get_task_manager
from django_remq.backends import RemqBackend, RemqTask
from django_remq.backends.compat import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_enqueued,
)
from django_remq.backends.decorator import task
from django_remq.testing import RemqTestEnv, remq_test_settings
from tests.remq_apps.dtasks import tasks as t

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
TASKS = "django_remq.backends.RemqBackend"


@pytest.fixture
def env(redis_url: str) -> Iterator[RemqTestEnv]:
    with remq_test_settings(redis_url) as test_env:
        yield test_env


def backend() -> Any:
    return task_backends["default"]


# -- decorating and validating ------------------------------------------------------


def test_decorating_gives_a_remq_task_with_the_backend_features() -> None:
    assert isinstance(t.add, RemqTask)
    assert isinstance(backend(), RemqBackend)
    assert t.add.module_path == "tests.remq_apps.dtasks.tasks.add"
    assert t.add.queue_name == "dtasks"
    b = backend()
    assert (b.supports_defer, b.supports_async_task, b.supports_get_result,
            b.supports_priority) == (True, True, True, True)
    assert (t.flaky.attempts, t.flaky.retry_delay_ms) == (2, 0)
    assert t.add.call(2, 3) == 5  # still a plain callable


def test_function_not_at_module_level_is_refused() -> None:
    def inner() -> None:
        pass

    with pytest.raises(InvalidTask, match="module level"):
        task(queue_name="dtasks")(inner)


@pytest.mark.parametrize("priority", [101, -101, 1.5])
def test_bad_priority_is_refused(priority: Any) -> None:
    with pytest.raises(InvalidTask, match="priority must be a whole number between -100 and 100"):
        t.add.using(priority=priority)


def test_naive_run_after_is_refused_under_use_tz() -> None:
    with pytest.raises(InvalidTask, match="run_after must be an aware datetime"):
        t.add.using(run_after=datetime.now() + timedelta(minutes=1))


def test_unknown_queue_is_refused(env: RemqTestEnv) -> None:
    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid for backend"):
        t.add.using(queue_name="nope").enqueue(1, 2)


def test_queue_name_remq_cannot_key_is_refused_with_the_fix() -> None:
    with override_settings(TASKS={"default": {"BACKEND": TASKS, "QUEUES": []}}), \
            pytest.raises(InvalidTask, match="may not contain whitespace or any of"):
        t.add.using(queue_name="a:b")


def test_bad_remq_option_on_task_is_refused_at_decoration() -> None:
    where = r"^@task on tests\.remq_apps\.dtasks\.tasks\.add: "
    with pytest.raises(InvalidTask, match=where + "'attempts' must be >= 0"):
        task(queue_name="dtasks", attempts=-1)(t.add.func)
    with pytest.raises(InvalidTask, match="'debounce'"):
        task(queue_name="dtasks", debounce={"window": 5})(t.add.func)


def test_args_json_cannot_hold_are_refused_and_nothing_is_stored(env: RemqTestEnv) -> None:
    with pytest.raises(TypeError, match="Unsupported type"):
        t.echo.enqueue(object())
    assert Sdk().list_jobs(queue="dtasks") == []


# -- enqueueing and reading back ----------------------------------------------------


def test_enqueue_stores_the_call_and_get_result_reads_it_back(env: RemqTestEnv) -> None:
    before = timezone.now()
    result = t.echo.using(priority=7).enqueue(1, (2, 3), key={"x": None})
    assert result.status == TaskResultStatus.READY
    assert result.args == [1, [2, 3]]  # JSON-normalised, as the framework does
    assert result.kwargs == {"key": {"x": None}}
    assert result.backend == "default"
    assert before - timedelta(seconds=1) <= result.enqueued_at <= timezone.now()
    assert (result.started_at, result.finished_at, result.worker_ids) == (None, None, [])

    seen = {}

    def other_thread() -> None:  # the framework gives each thread its own instance
        seen["backend"] = task_backends["default"]
        seen["result"] = task_backends["default"].get_result(result.id)

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    assert seen["backend"] is not backend()
    again = seen["result"]
    assert again.id == result.id
    assert again.status == TaskResultStatus.READY
    assert again.task == t.echo.using(priority=7)
    assert (again.args, again.kwargs) == (result.args, result.kwargs)
    assert again.enqueued_at == result.enqueued_at
    with pytest.raises(ValueError, match="Task has not finished yet"):
        _ = again.return_value

    job = Sdk().get_job(result.id, "dtasks")
    assert job is not None
    assert job.state.name == "tests.remq_apps.dtasks.tasks.echo"  # readable in admin/CLI
    assert (job.status, job.priority) == ("waiting", 7)


def test_backend_instances_share_one_connection_pool(env: RemqTestEnv) -> None:
    pools = []

    def enqueue() -> None:
        t.add.enqueue(1, 1)
        pools.append(get_task_manager().conn)

    threads = [threading.Thread(target=enqueue) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(pools) == 3
    assert all(p is pools[0] for p in pools)


def test_unknown_id_raises_does_not_exist(env: RemqTestEnv) -> None:
    with pytest.raises(TaskResultDoesNotExist):
        backend().get_result("no-such-id")
    from django_remq.errors import UnknownEventWarning

    with pytest.warns(UnknownEventWarning):  # a job, not a Django task
        plain = emit("plain.job", data={"args": []}, queue="dtasks")
    with pytest.raises(TaskResultDoesNotExist, match="not a Django task"):
        backend().get_result(plain)


def test_task_get_result_checks_the_task(env: RemqTestEnv) -> None:
    result = t.add.enqueue(1, 2)
    assert t.add.get_result(result.id).args == [1, 2]
    with pytest.raises(Exception, match="Task does not match"):
        t.echo.get_result(result.id)


def test_run_after_makes_a_delayed_job(env: RemqTestEnv) -> None:
    when = timezone.now() + timedelta(hours=1)
    result = t.add.using(run_after=when).enqueue(1, 2)
    job = Sdk().get_job(result.id, "dtasks")
    assert job is not None
    assert job.status == "delayed"
    assert job.delay_until == int(when.timestamp() * 1000)
    read = backend().get_result(result.id)
    assert read.status == TaskResultStatus.READY
    assert read.task.run_after == when.replace(microsecond=when.microsecond // 1000 * 1000)


def test_queues_empty_means_any_queue(env: RemqTestEnv) -> None:
    with override_settings(TASKS={"default": {"BACKEND": TASKS, "QUEUES": []}}):
        result = t.add.using(queue_name="elsewhere").enqueue(2, 2)
        assert backend().get_result(result.id).task.queue_name == "elsewhere"
        assert Sdk().get_job(result.id, "elsewhere") is not None


def test_task_enqueued_fires_in_the_emitting_process(env: RemqTestEnv) -> None:
    got: list[Any] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        got.append((sender, task_result.id, task_result.status))

    task_enqueued.connect(receiver)
    try:
        result = t.add.enqueue(1, 2)
    finally:
        task_enqueued.disconnect(receiver)
    assert got == [(RemqBackend, result.id, TaskResultStatus.READY)]


async def test_aenqueue_and_aget_result(env: RemqTestEnv) -> None:
    got: list[str] = []

    async def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        got.append(task_result.id)

    task_enqueued.connect(receiver)
    try:
        result = await t.async_echo.aenqueue("hi")
    finally:
        task_enqueued.disconnect(receiver)
    assert got == [result.id]
    read = await backend().aget_result(result.id)
    assert (read.status, read.args) == (TaskResultStatus.READY, ["hi"])
    await read.arefresh()
    with pytest.raises(TaskResultDoesNotExist):
        await backend().aget_result("missing")


def test_remq_options_become_the_jobs_policies(env: RemqTestEnv) -> None:
    with override_settings(TASKS={"default": {"BACKEND": TASKS, "QUEUES": ["dtasks"],
                                              "OPTIONS": {"attempts": 4, "timeout_ms": 900}}}):
        plain = t.add.enqueue(1, 2)
        own = t.flaky.enqueue()
    jobs = {r.id: Sdk().get_job(r.id, "dtasks") for r in (plain, own)}
    assert jobs[plain.id].state.options["attempts"] == 4  # type: ignore[union-attr]
    assert jobs[plain.id].state.options["timeout_ms"] == 900  # type: ignore[union-attr]
    assert jobs[own.id].state.options["attempts"] == 2  # type: ignore[union-attr]  # task wins
    assert jobs[own.id].state.options["retry_delay_ms"] == 0  # type: ignore[union-attr]


# -- checks -------------------------------------------------------------------------


def test_check_reports_bad_options_with_hints() -> None:
    params = {"BACKEND": TASKS, "QUEUES": ["dtasks", "a b"],
              "OPTIONS": {"atempts": 3, "retry_delay_ms": 5}}
    errors = RemqBackend("x", params).check()
    assert [e.id for e in errors] == ["remq.E102", "remq.E104"]
    assert "unknown key 'atempts'" in errors[0].msg
    assert "Did you mean 'attempts'?" in errors[0].hint
    bad_value = RemqBackend("x", {"BACKEND": TASKS, "OPTIONS": {"timeout_ms": "fast"}}).check()
    assert [e.id for e in bad_value] == ["remq.E103"]
    assert "'timeout_ms' must be an int" in bad_value[0].msg
    assert RemqBackend("x", {"BACKEND": TASKS, "OPTIONS": []}).check()[0].id == "remq.E101"
    assert RemqBackend("x", {"BACKEND": TASKS, "OPTIONS": {"attempts": 2}}).check() == []


def test_manage_check_runs_the_backend_check() -> None:
    from django.core import checks

    with override_settings(TASKS={"default": {"BACKEND": TASKS,
                                              "OPTIONS": {"debounse": 100}}}):
        found = [m for m in checks.run_checks() if m.id.startswith("remq.E1")]
    assert [m.id for m in found] == ["remq.E102"]
    assert "'debounce'" in (found[0].hint or "")


def test_bad_options_raise_at_enqueue(env: RemqTestEnv) -> None:
    from django.core.exceptions import ImproperlyConfigured

    with override_settings(TASKS={"default": {"BACKEND": TASKS, "QUEUES": ["dtasks"],
                                              "OPTIONS": {"attempts": "3"}}}), \
            pytest.raises(ImproperlyConfigured, match="'attempts' must be an int"):
        t.add.enqueue(1, 2)


@pytest.mark.skipif(django.VERSION >= (6,), reason="Django 6 has django.tasks built in")
def test_without_the_backport_on_django_5_the_error_says_what_to_install() -> None:
    code = ("import sys; sys.modules['django_tasks'] = None\n"
            "import django; from django.conf import settings; settings.configure(); "
            "django.setup()\n"
            "from django_remq.backends import RemqBackend\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "ImproperlyConfigured" in proc.stderr
    assert "needs Django's Tasks framework: Django 6" in proc.stderr
    assert "pip install 'django-remq[tasks]'" in proc.stderr


def test_trailing_debounce_on_task_merges_calls_into_one_job(env: RemqTestEnv) -> None:
    first = t.debounced.enqueue(1)
    second = t.debounced.enqueue(2)
    assert second.id == first.id  # the pending job: the result id to poll
    read = backend().get_result(first.id)
    assert read.args == [2]  # it runs once, with the latest call
    assert Sdk().get_job(first.id, "dtasks").status == "delayed"  # type: ignore[union-attr]


def test_misspelt_task_keyword_fails_at_import() -> None:
    with pytest.raises(TypeError, match="atempts"):
        task(queue_name="dtasks", atempts=3)(t.add.func)
