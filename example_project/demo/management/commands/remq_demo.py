"""``manage.py remq_demo``: Redis (real, or fakeredis in-process), a worker and the
development server, in one command."""

from __future__ import annotations

import asyncio
import os
import threading
from argparse import ArgumentParser
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand

from django_remq.api import build_task_manager, reset_task_manager
from django_remq.conf import ENV_REDIS_URL, get_settings
from django_remq.conf import reset as reset_settings
from django_remq.core.store.connection import describe
from django_remq.testing import start_fake_redis
from django_remq.worker import RedisUnavailable, banner, configure_logging, probe_redis


class Command(BaseCommand):
    help = "Run the demo: a Redis (the configured one, else an in-process fake), a worker " \
           "and the development server."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000",
                            help="where the web server listens (default 127.0.0.1:8000)")

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["verbosity"])
        self.stdout.write(self._choose_redis())
        tm = build_task_manager()
        queues = list(get_settings().queues or tm.queues)
        for line in banner(tm, queues, burst=False):
            self.stdout.write(line)
        loop, stop = asyncio.new_event_loop(), asyncio.Event()
        worker = threading.Thread(target=loop.run_until_complete, name="remq-worker",
                                  args=(tm.run(queues, stop_event=stop),), daemon=True)
        worker.start()
        addrport = options["addrport"]
        self.stdout.write(f"\nOpen http://{addrport}/ in a browser (Ctrl-C stops everything).\n")
        self.stdout.flush()
        try:
            call_command("runserver", addrport, use_reloader=False)
        finally:
            loop.call_soon_threadsafe(stop.set)
            worker.join(10)

    def _choose_redis(self) -> str:
        url = get_settings().redis_url
        try:
            probe_redis(url, timeout=1.0)
        except RedisUnavailable:
            fake = start_fake_redis()
            os.environ[ENV_REDIS_URL] = fake
            reset_settings()
            reset_task_manager()
            return (f"No Redis answered at {describe(url)}, so this demo started an in-process "
                    f"fakeredis server at {fake}.\nIts data lives in this process only; start "
                    "a real Redis (`redis-server`) to keep jobs between runs.")
        return f"Using the real Redis server at {describe(url)}."

