"""``manage.py runworker_remq``: parse, build the TaskManager, hand off to the engine."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from ...api import build_task_manager
from ...conf import get_settings
from ...core.store.keys import validate_queue_name
from ...worker import (
    RedisUnavailable,
    banner,
    configure_logging,
    probe_redis,
    run_worker,
    served_queues,
)


class Command(BaseCommand):
    help = "Run a remq worker: process tasks from Redis until stopped (or, with --burst, done)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--queues", help="comma-separated queues to serve (default: "
                            "REMQ['QUEUES'], else every queue with a handler)")
        parser.add_argument("--concurrency", type=int, help="tasks run at once "
                            "(default: REMQ['CONCURRENCY'])")
        parser.add_argument("--burst", action="store_true",
                            help="process until the queues are empty, then exit 0")
        parser.add_argument("--shutdown-timeout", type=float, metavar="SECONDS",
                            help="on SIGTERM, how long running tasks may take to finish")
        parser.add_argument("--expose", type=int, metavar="PORT",
                            help="also serve the WebSocket gateway on this port, from this "
                                 "worker (the original remq's expose)")
        parser.add_argument("--no-autodiscover", action="store_true",
                            help="do not import the apps' tasks modules (handlers come only "
                                 "from modules your settings or apps import)")

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["verbosity"])
        queues = self._queues(options["queues"])
        if options["concurrency"] is not None and options["concurrency"] < 1:
            raise CommandError("--concurrency must be 1 or more")
        if options["expose"] is not None and not 0 < options["expose"] < 65536:
            raise CommandError("--expose must be a TCP port (1-65535)")
        processor: dict[str, Any] = {}
        if options["shutdown_timeout"] is not None:
            processor["shutdown_timeout_ms"] = max(int(options["shutdown_timeout"] * 1000), 1)
        try:
            tm = build_task_manager(concurrency=options["concurrency"], processor=processor,
                                    expose=options["expose"])
            queues = served_queues(tm, queues)
            probe_redis(get_settings().redis_url, cluster=get_settings().cluster)
        except (ImproperlyConfigured, RedisUnavailable) as exc:
            raise CommandError(str(exc)) from None
        for line in banner(tm, queues, burst=options["burst"]):
            self.stdout.write(line)
        run_worker(tm, queues, burst=options["burst"])
        self.stdout.write("remq worker stopped")

    @staticmethod
    def _queues(value: str | None) -> list[str] | None:
        if not value:
            return None
        names = [q.strip() for q in value.split(",") if q.strip()]
        for name in names:
            try:
                validate_queue_name(name)
            except ValueError as exc:
                raise CommandError(f"--queues: {exc}") from None
        return names
