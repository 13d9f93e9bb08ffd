"""The Django app config (autodiscovery of ``tasks.py`` modules is added here)."""

from __future__ import annotations

from django.apps import AppConfig


class RemqConfig(AppConfig):
    name = "django_remq"
    verbose_name = "Task queues (remq)"
