"""``manage.py runworker_remq``: parse, build the TaskManager, hand off to the engine."""

from __future__ import annotations

import ipaddress
import re
import sys
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from ...api import build_task_manager
from ...conf import get_settings
from ...consumers import gateway_server
from ...core.store.keys import validate_queue_name
from ...core.worker import affinity
from ...supervisor import Supervisor, child_argv
from ...worker import (
    RedisUnavailable,
    banner,
    configure_logging,
    end_process,
    probe_redis,
    run_worker,
    served_queues,
)

HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\Z")
EXPOSE_FORMS = ("write PORT (on 127.0.0.1), HOST:PORT, or [IPv6]:PORT: --expose 4000, "
                "--expose 0.0.0.0:4000 (every interface), --expose [::1]:4000")


def expose_address(value: str | int | None) -> tuple[str | None, int | None]:
    """``--expose``'s ``(host, port)``; the host is ``None`` when only a port is given."""
    if value is None:
        return None, None
    text, host = str(value).strip(), None
    if text.startswith("["):
        inside, closed, rest = text[1:].partition("]")
        if not closed or not rest.startswith(":") or not _ip(inside, 6):
            raise CommandError(f"--expose {value}: {EXPOSE_FORMS}")
        host, text = inside, rest[1:]
    elif ":" in text:
        host, _, text = text.rpartition(":")
        if ":" in host:
            raise CommandError(f"--expose {value}: an IPv6 address goes in brackets "
                               f"([{host}]:{text})")
        if not (_ip(host, 4) or HOSTNAME.match(host)):
            raise CommandError(f"--expose {value}: {host!r} is not an IP address or host "
                               f"name; {EXPOSE_FORMS}")
    port = int(text) if text.isascii() and text.isdigit() else -1
    if not 0 < port < 65536:
        raise CommandError(f"--expose must be a TCP port (1-65535), got {text!r}; "
                           f"{EXPOSE_FORMS}")
    return host, port


def _ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


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
        parser.add_argument("--expose", metavar="[HOST:]PORT",
                            help="also serve the WebSocket gateway from this worker (the "
                                 "original remq's expose) on PORT of 127.0.0.1, or of HOST: "
                                 "0.0.0.0:PORT or [::]:PORT listens on every interface")
        parser.add_argument("--processes", type=int, default=1, metavar="N",
                            help="run N worker processes under one supervisor that forwards "
                                 "SIGTERM/SIGINT and restarts a child that dies (default 1)")
        parser.add_argument("--cpu-affinity", metavar="threads|auto|none|CPUS",
                            help="'threads': the event loop and plain def handlers' threads "
                                 "share one CPU core, their native work keeps every CPU (plain "
                                 "def handlers run about twice as fast); 'auto': each whole "
                                 "worker process on one CPU, the CPUs this process may use in "
                                 "turn, '0,2' those; 'none': no pinning; default: "
                                 "REMQ['CPU_AFFINITY'], else threads")
        parser.add_argument("--no-autodiscover", action="store_true",
                            help="do not import the apps' tasks modules (handlers come only "
                                 "from modules your settings or apps import)")

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["verbosity"])
        queues = self._queues(options["queues"])
        if options["concurrency"] is not None and options["concurrency"] < 1:
            raise CommandError("--concurrency must be 1 or more")
        host, port = expose_address(options["expose"])
        processes = self._processes(options)
        spec, cpus = self._cpus(options, processes)
        processor: dict[str, Any] = {}
        if options["cpu_affinity"] is not None:  # else REMQ's, as build_task_manager reads it
            processor["pin_threads"] = spec == affinity.THREADS
        if options["shutdown_timeout"] is not None:
            processor["shutdown_timeout_ms"] = max(int(options["shutdown_timeout"] * 1000), 1)
        try:
            tm = build_task_manager(concurrency=options["concurrency"], processor=processor,
                                    expose=None if port is None else gateway_server(port, host))
            queues = served_queues(tm, queues)
            probe_redis(get_settings().redis_url, cluster=get_settings().cluster)
        except (ImproperlyConfigured, RedisUnavailable) as exc:
            raise CommandError(str(exc)) from None
        unavailable = self._gateway(tm, host, port)
        if processes > 1:
            code = Supervisor(child_argv(), processes, burst=options["burst"],
                              cpus=cpus).run()
            if code:
                sys.exit(code)
            self.stdout.write("remq supervisor stopped")
            self._end()
            return
        for line in banner(tm, queues, burst=options["burst"]):
            self.stdout.write(line)
        if cpus:
            affinity.pin(cpus[0])
            self.stdout.write(f"pinned to CPU {cpus[0]}")
        try:
            run_worker(tm, queues, burst=options["burst"])
        except unavailable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write("remq worker stopped")
        self._end()

    def _end(self) -> None:
        """From the command line, exit now (see end_process); called in a process (tests,
        call_command), return to the caller."""
        if getattr(self, "_called_from_command_line", False):
            self.stdout.flush()
            end_process(0)

    @staticmethod
    def _gateway(tm: Any, host: str | None, port: int | None) -> tuple[type[Exception], ...]:
        """Where ``--expose`` listens; the error it raises when it cannot (one line then)."""
        if port is None:
            return ()
        from ...consumers.expose import ExposeUnavailable, listen_on

        if host is not None:
            listen_on(tm, host)
        return (ExposeUnavailable,)

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
    def _cpus(options: dict[str, Any], processes: int) -> tuple[affinity.Spec, list[int] | None]:
        """The affinity asked for, and each worker process's CPU (by its index under
        ``--processes``) when whole processes are pinned, else ``None``."""
        try:
            spec = (affinity.parse(options["cpu_affinity"])
                    if options["cpu_affinity"] is not None else get_settings().cpu_affinity)
            return spec, affinity.cpus_for(spec, processes)
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
