"""Settings of the bench/tasks.py worker and emitter (key prefix from the environment)."""

from __future__ import annotations

import os

import django

SECRET_KEY = "bench-only"
USE_TZ = True
INSTALLED_APPS = ["django_remq", "benchapp"]
if django.VERSION < (6,):
    INSTALLED_APPS.append("django_tasks")
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
REMQ = {"REDIS_URL": os.environ["BENCH_REDIS_URL"], "PREFIX": os.environ["BENCH_PREFIX"]}
TASKS = {"default": {"BACKEND": "django_remq.backends.RemqBackend", "QUEUES": ["bench"]}}
