"""Test settings for worker subprocesses: the parent test chooses the key prefix."""

from __future__ import annotations

import os

from tests.django_settings import *  # noqa: F403
from tests.django_settings import REMQ

REMQ = {**REMQ, "PREFIX": os.environ.get("REMQ_TEST_PREFIX", "remqtest")}
if os.environ.get("REMQ_TEST_DB"):  # a file: an in-memory sqlite never really closes
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                             "NAME": os.environ["REMQ_TEST_DB"]}}
if os.environ.get("REMQ_TEST_CPU_AFFINITY"):  # "auto" or CPU numbers such as "0,1"
    _cpus = os.environ["REMQ_TEST_CPU_AFFINITY"]
    REMQ["CPU_AFFINITY"] = _cpus if _cpus == "auto" else [int(c) for c in _cpus.split(",")]
