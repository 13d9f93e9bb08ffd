"""Test settings for worker subprocesses: the parent test chooses the key prefix."""

from __future__ import annotations

import os

from tests.django_settings import *  # noqa: F403
from tests.django_settings import REMQ

REMQ = {**REMQ, "PREFIX": os.environ.get("REMQ_TEST_PREFIX", "remqtest")}
if os.environ.get("REMQ_TEST_DB"):  # a file: an in-memory sqlite never really closes
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                             "NAME": os.environ["REMQ_TEST_DB"]}}
