"""Django settings for the test suite (pytest-django)."""

from __future__ import annotations

import os

import django

SECRET_KEY = "tests-only-not-secret"
DEBUG = True
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_remq",
    "tests.remq_apps.alpha",  # two apps with tasks.py, for autodiscovery tests
    "tests.remq_apps.beta",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
if django.VERSION < (6,):  # Django 5.2: the Tasks framework is the django-tasks backport
    INSTALLED_APPS.append("django_tasks")
# Django tasks on remq (tests/test_tasks_backend*.py; the functions: tests/remq_apps/dtasks)
TASKS = {"default": {"BACKEND": "django_remq.backends.RemqBackend",
                     "QUEUES": ["dtasks", "dtasks-other"], "OPTIONS": {}}}
REMQ = {
    "REDIS_URL": os.environ.get("REMQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
    "PREFIX": "remqtest",
}
