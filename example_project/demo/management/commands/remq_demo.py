"""``manage.py remq_demo``: Redis (real, or fakeredis in-process), a worker and the
development server (daphne's ASGI ``runserver``: pages and the WebSocket gateway), in
one command."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import threading
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.management.commands.runserver import naiveip_re

from django_remq.api import build_task_manager, reset_task_manager
from django_remq.conf import ENV_REDIS_URL, get_settings
from django_remq.conf import reset as reset_settings
from django_remq.core.store.connection import describe
from django_remq.testing import start_fake_redis
from django_remq.worker import (
    RedisUnavailable,
    banner,
    configure_logging,
    end_process,
    probe_redis,
)


class Command(BaseCommand):
    help = "Run the demo: a Redis (the configured one, else an in-process fake), a worker " \
           "and the development server."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000",
                            help="where the web server listens (default 127.0.0.1:8000)")

    def handle(self, *args: Any, **options: Any) -> None:
        check_can_listen(options["addrport"])
        configure_logging(options["verbosity"])
        call_command("migrate", verbosity=0)
        self._demo_users()
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
        # the server and the worker have stopped: leave now, as runworker_remq does, rather
        # than wait on threads a handler or the server's executor may still hold
        end_process(0)

    def _demo_users(self) -> None:
        """``demo``/``demo`` emits and follows its reports; ``admin``/``admin`` is staff."""
        users = get_user_model().objects
        for name, staff in (("demo", False), ("admin", True)):
            if not users.filter(username=name).exists():
                users.create_user(name, password=name, is_staff=staff)
        self.stdout.write("Sign in as demo/demo, or admin/admin (staff: the live feed).")

    def _choose_redis(self) -> str:
        url = get_settings().redis_url
        try:
            probe_redis(url, timeout=1.0)
        except RedisUnavailable:
            fake = start_fake_redis()
            os.environ[ENV_REDIS_URL] = fake
            # the gateway's channel layer follows (channels-redis works on fakeredis too)
            settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [fake]
            reset_settings()
            reset_task_manager()
            return (f"No Redis answered at {describe(url)}, so this demo started an in-process "
                    f"fakeredis server at {fake}.\nIts data lives in this process only; start "
                    "a real Redis (`redis-server`) to keep jobs between runs.")
        return f"Using the real Redis server at {describe(url)}."


def check_can_listen(addrport: str) -> None:
    """Fail before anything starts when the web server could not listen: daphne only logs
    a taken port (a Twisted traceback), then the demo would exit 0 with nothing served."""
    match = naiveip_re.match(addrport)
    if match is None:
        return  # runserver explains a malformed address itself
    addr, port = match["addr"] or "127.0.0.1", int(match["port"])
    host = addr.strip("[]")
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(host, port,
                                                              type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as daphne does
            probe.bind(sockaddr)
    except OSError as exc:
        other = f"{addr}:{port + 1 if port < 65535 else 8001}"
        why = ("is already in use (another server, or a demo still running)"
               if exc.errno == errno.EADDRINUSE else f"cannot be listened on ({exc.strerror})")
        raise CommandError(f"{addr}:{port} {why}; pick another address: ./dev demo {other} "
                           f"(or manage.py remq_demo {other}).") from None
