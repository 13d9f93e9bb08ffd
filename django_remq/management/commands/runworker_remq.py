"""``manage.py runworker_remq``: parse, build the TaskManager, hand off to the engine."""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from ...api import build_task_manager
from ...conf import get_settings
from ...core.store.keys import validate_queue_name
from ...core.worker import affinity
from ...supervisor import Supervisor, child_argv
from ...worker import (
    RedisUnavailable,
    banner,
    configure_logging,
    pinning_tip,
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
        parser.add_argument("--processes", type=int, default=1, metavar="N",
                            help="run N worker processes under one supervisor that forwards "
                                 "SIGTERM/SIGINT and restarts a child that dies (default 1)")
        parser.add_argument("--cpu-affinity", metavar="auto|none|CPUS",
                            help="pin each worker process to one CPU (plain def handlers "
                                 "run about twice as fast): 'auto' takes the CPUs this "
                                 "process may use in turn, '0,2' those; default: "
                                 "REMQ['CPU_AFFINITY'], else none")
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
        processes = self._processes(options)
        cpus = self._cpus(options, processes)
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
        if processes > 1:
            code = Supervisor(child_argv(), processes, burst=options["burst"],
                              cpus=cpus).run()
            if code:
                sys.exit(code)
            self.stdout.write("remq supervisor stopped")
            return
        for line in banner(tm, queues, burst=options["burst"]):
            self.stdout.write(line)
        if cpus:
            affinity.pin(cpus[0])
            self.stdout.write(f"pinned to CPU {cpus[0]}")
        elif (tip := pinning_tip(tm, queues)) is not None:
            self.stdout.write(tip)
        run_worker(tm, queues, burst=options["burst"])
        self.stdout.write("remq worker stopped")

    @staticmethod
    def _processes(options: dict[str, Any]) -> int:
        processes: int = options["processes"]
        if processes < 1:
            raise CommandError("--processes must be 1 or more")
        if processes > 1 and options["expose"] is not None:
            raise CommandError("--expose serves one port from one process: run the exposing "
                               "worker on its own (runworker_remq --expose PORT) and the "
                               "others with --processes N")
        if processes > 1 and "runworker_remq" not in sys.orig_argv:
            raise CommandError("--processes re-runs this command line in each worker process, "
                               "so it works from `manage.py runworker_remq`, not from "
                               "call_command(); start one process per call instead")
        return processes

    @staticmethod
    def _cpus(options: dict[str, Any], processes: int) -> list[int] | None:
        """Each worker process's CPU (by its index under ``--processes``), or ``None``."""
        try:
            spec = (affinity.parse(options["cpu_affinity"])
                    if options["cpu_affinity"] is not None else get_settings().cpu_affinity)
            return affinity.cpus_for(spec, processes)
        except (ValueError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from None

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
