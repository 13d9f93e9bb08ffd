"""Settings mistakes of a new user's first hour, each reported with its fix: a ``@task`` in
a queue the Tasks backend does not list (a system check, not a traceback from every
``manage.py`` command), an ``enqueue`` argument JSON cannot hold (which one, and why), and
a processor setting written at the top level of ``REMQ``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_remq import Sdk
from django_remq.backends.compat import InvalidTask, task
from django_remq.checks import check_settings
from django_remq.conf import get_settings
from django_remq.errors import ImproperlyConfiguredRemq
from django_remq.testing import RemqTestEnv, remq_test_settings
from tests.remq_apps.dtasks import tasks as t

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
BACKEND = "django_remq.backends.RemqBackend"

# -- a @task in a queue TASKS does not list -------------------------------------------

SETTINGS = """
import django

SECRET_KEY = "first-hour"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_remq",
                  "mailapp"]
if django.VERSION < (6,):
    INSTALLED_APPS.append("django_tasks")
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
TASKS = {{"default": {tasks}}}
"""
TASKS_PY = """
try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task


@task(queue_name="emails")
def send_welcome(user_id):
    return user_id
"""


def manage_check(project: Path, tasks: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (project / "first_hour_settings.py").write_text(SETTINGS.format(tasks=tasks))
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(ROOT)])}
    environ.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run([sys.executable, "-m", "django", "check",
                           "--settings=first_hour_settings"], cwd=project, env=environ,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_task_in_a_queue_tasks_does_not_list_is_a_system_check_with_the_fix(
        tmp_path: Path) -> None:
    (tmp_path / "mailapp").mkdir()
    (tmp_path / "mailapp" / "__init__.py").write_text("")
    (tmp_path / "mailapp" / "tasks.py").write_text(textwrap.dedent(TASKS_PY))

    proc = manage_check(tmp_path, {"BACKEND": BACKEND})  # no QUEUES: only "default"
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert ("(remq.E105) @task on mailapp.tasks.send_welcome uses queue 'emails', but "
            "TASKS['default'] has no 'QUEUES', so it takes only the 'default' queue."
            ) in proc.stderr
    assert "HINT: Add it: TASKS['default']['QUEUES'] = ['default', 'emails']" in proc.stderr

    fixed = manage_check(tmp_path, {"BACKEND": BACKEND, "QUEUES": ["default", "emails"]})
    assert fixed.returncode == 0, fixed.stderr  # the hint, applied, is the fix
    assert "no issues" in fixed.stdout


def test_a_task_in_an_unlisted_queue_is_refused_after_start_up_with_the_fix() -> None:
    with override_settings(TASKS={"default": {"BACKEND": BACKEND, "QUEUES": ["dtasks"]}}), \
            pytest.raises(InvalidTask) as refused:
        task(queue_name="emails")(t.add.func)
    assert str(refused.value) == (
        "Queue 'emails' is not valid for backend 'default': @task on "
        "tests.remq_apps.dtasks.tasks.add uses queue 'emails', but TASKS['default']['QUEUES'] "
        "does not list it. Add it: TASKS['default']['QUEUES'] = ['dtasks', 'emails'] (or [] "
        "to allow any queue name).")


# -- enqueue arguments JSON cannot hold -----------------------------------------------


@pytest.fixture
def env(redis_url: str) -> Iterator[RemqTestEnv]:
    with remq_test_settings(redis_url) as test_env:
        yield test_env


def test_enqueue_names_the_argument_json_cannot_hold(env: RemqTestEnv) -> None:
    when = datetime(2030, 1, 2, tzinfo=UTC)
    with pytest.raises(TypeError) as positional:
        t.echo.enqueue("to@example.com", Decimal("9.50"))
    assert str(positional.value).startswith(
        "tests.remq_apps.dtasks.tasks.echo.enqueue(): positional argument 1 = Decimal('9.50') "
        "(Decimal) cannot be stored: a task's arguments are saved as JSON (Unsupported type")
    assert "a Decimal with str()" in str(positional.value)

    with pytest.raises(TypeError, match=r"keyword argument 'when' = datetime\.datetime\(2030, "
                       r"1, 2, 0, 0, tzinfo=datetime\.timezone\.utc\) \(datetime\) cannot be "
                       r"stored: a task's arguments are saved as JSON"):
        t.echo.enqueue(1, when=when)

    with pytest.raises(TypeError, match=r"positional argument 0 \(at args\[0\]\['tags'\]\[1\]\) "
                       r"= \{'b'\} \(set\) cannot be stored"):
        t.echo.enqueue({"tags": ["a", {"b"}]})
    assert Sdk().list_jobs(queue="dtasks") == []


async def test_aenqueue_names_the_argument_too(env: RemqTestEnv) -> None:
    with pytest.raises(TypeError, match=r"keyword argument 'user' = <object object at .*> "
                       r"\(object\) cannot be stored"):
        await t.echo.aenqueue(user=object())


# -- REMQ: a processor setting at the top level -----------------------------------------


def remq_findings(remq: dict[str, Any]) -> list[tuple[str, str]]:
    with override_settings(REMQ=remq):
        return [(m.id, f"{m.msg} {m.hint}") for m in check_settings()]


@pytest.mark.parametrize(("key", "belongs"), [
    ("max_retries", "REMQ['PROCESSOR']['retry']['max_retries']"),
    ("MAX_RETRIES", "REMQ['PROCESSOR']['retry']['max_retries']"),
    ("should_send_to_dlq", "REMQ['PROCESSOR']['dlq']['should_send_to_dlq']"),
    ("retry", "REMQ['PROCESSOR']['retry']"),
    ("DLQ", "REMQ['PROCESSOR']['dlq']"),
    ("max_logs_per_task", "REMQ['PROCESSOR']['max_logs_per_task']"),
    ("Claim_Idle_Ms", "REMQ['PROCESSOR']['claim_idle_ms']"),
])
def test_a_processor_setting_at_the_top_level_says_it_belongs_under_processor(
        key: str, belongs: str) -> None:
    [(check_id, text)] = remq_findings({key: 3})
    assert check_id == "remq.E007"
    assert f"REMQ has {key!r} at the top level, but it is a processor setting." in text
    assert f"It belongs under PROCESSOR: {belongs}" in text


def test_a_per_task_option_at_the_top_level_says_where_it_goes() -> None:
    [(check_id, text)] = remq_findings({"attempts": 3})
    assert check_id == "remq.E007"
    assert "per-task option" in text
    assert "@handler(..., attempts=...)" in text


def test_the_error_at_use_and_manage_check_say_it_too() -> None:
    with override_settings(REMQ={"max_retries": 3}):
        with pytest.raises(ImproperlyConfiguredRemq,
                           match=r"REMQ\['PROCESSOR'\]\['retry'\]\['max_retries'\]"):
            get_settings()
        with pytest.raises(SystemCheckError, match=r"remq\.E007.*REMQ has 'max_retries' at "
                           r"the top level(.|\n)*REMQ\['PROCESSOR'\]\['retry'\]"):
            call_command("check")
