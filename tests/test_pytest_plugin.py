"""``django_remq.testing`` is a pytest plugin (entry point ``pytest11``): a user's suite gets
the ``remq`` and ``remq_fake`` fixtures without importing anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes

SETTINGS = """
SECRET_KEY = "test"
INSTALLED_APPS = ["django.contrib.contenttypes", "django_remq", "shop"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}}
USE_TZ = True
REMQ = {{"REDIS_URL": {url!r}}}
"""

TASKS = """
from django_remq import handler

@handler("double")
def double(task, ctx):
    return task.data * 2
"""

TESTS = """
from django_remq import emit

def test_on_the_configured_redis(remq):
    job_id = emit("double", data=21)
    remq.run_until_idle()
    job = remq.get_job(job_id)
    assert (job.status, job.result) == ("completed", 42)

def test_on_a_fake_redis(remq_fake):
    job_id = emit("double", data=4)
    remq_fake.run_until_idle()
    assert remq_fake.get_job(job_id).result == 8
"""


def test_a_user_suite_gets_the_fixtures_without_importing_them(tmp_path: Path,
                                                                redis_url: str) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "settings.py").write_text(SETTINGS.format(url=redis_url))
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "tasks.py").write_text(TASKS)
    (tmp_path / "test_shop.py").write_text(TESTS)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "settings", "PYTHONPATH": str(tmp_path)}
    env.pop("REMQ_REDIS_URL", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "test_shop.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 passed" in proc.stdout
