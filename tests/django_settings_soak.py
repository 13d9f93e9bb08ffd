"""Settings of the soak test's worker (tests/test_soak.py): only the soak app's handlers,
on the key prefix the test chooses, with short heartbeats so a cancel lands quickly."""

from __future__ import annotations

import faulthandler
import os
import signal

SECRET_KEY = "tests-only-not-secret"
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django.contrib.contenttypes", "django_remq", "tests.soak_app"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
REMQ = {
    "REDIS_URL": os.environ.get("REMQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "PREFIX": os.environ.get("REMQ_TEST_PREFIX", "remqtest"),
    "QUEUES": ["soak"],
    "PROCESSOR": {
        "claim_idle_ms": 6_000,  # a running job sees a cancel within one heartbeat, 2 s
        "dlq": {},
        "retry": {"max_retries": 10, "retry_delay_ms": 0},
    },
}

# SIGUSR1 prints every thread's stack to stderr (the worker's log): the test asks a worker
# that missed its deadline where it is, with or without py-spy.
faulthandler.register(signal.SIGUSR1, all_threads=True)
