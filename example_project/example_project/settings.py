"""Settings of the example project: the smallest useful django_remq setup."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "daphne",  # `runserver` serves ASGI (HTTP and the WebSocket gateway)
    "django.contrib.admin",         # the task-queue admin pages live in the admin
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_remq",  # finds demo/tasks.py, adds `manage.py runworker_remq`
    "demo",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "live"
ROOT_URLCONF = "example_project.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
WSGI_APPLICATION = "example_project.wsgi.application"
ASGI_APPLICATION = "example_project.asgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.environ.get("REMQ_DEMO_DB", BASE_DIR / "db.sqlite3")}}
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Everything is optional; REMQ_REDIS_URL in the environment overrides REDIS_URL (and
# REMQ_DEMO_PREFIX the prefix here: two demos on one Redis keep apart).
REMQ = {
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "PREFIX": os.environ.get("REMQ_DEMO_PREFIX", "remq-demo"),
    "CONCURRENCY": 4,
    "CTX": "demo.ctx.build_ctx",            # what handlers find on `ctx`
    "PROCESSOR": {
        "retry": {"max_retries": 5},          # the processor allows retries...
        "max_logs_per_task": 100,             # ...each handler says how many it wants
        "claim_idle_ms": 30_000,
    },
    "EMIT_ON_COMMIT": True,                   # views emit after their transaction commits
    "GATEWAY": {},                            # WebSocket gateway with the secure defaults
}

# The gateway's channel layer: the REMQ Redis (workers send live events through it).
# capacity: messages a connection may have waiting; the workers coalesce progress
# updates, so this bounds a client that stopped reading, not a fast task.
CHANNEL_LAYERS = {"default": {
    "BACKEND": "channels_redis.core.RedisChannelLayer",
    "CONFIG": {"hosts": [os.environ.get("REMQ_REDIS_URL", REMQ["REDIS_URL"])],
               "prefix": f"{REMQ['PREFIX']}-asgi", "capacity": 1000},
}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_remq": {"handlers": ["console"], "level": "INFO"}},
}
