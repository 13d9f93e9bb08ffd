"""Running a worker process: the Redis probe, the start-up banner, signals.

Kept out of the management command so ``runworker_remq`` stays a thin parser and
other entry points (the example's ``remq_demo``) run workers the same way.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import redis
import redis.cluster

from .conf import get_settings
from .core import TaskManager
from .core.errors import RedisUnavailable as RedisUnavailable  # importable from here too
from .core.errors import SyncThreadsExhausted
from .core.handlers import HandlerEntry
from .core.store.clients import make_client
from .core.store.connection import describe

log = logging.getLogger("django_remq.worker")

START_REDIS_HINT = ("Start one (`redis-server --daemonize yes`, or `docker run -d -p 6379:6379 "
                    "redis:7`), or point REMQ['REDIS_URL'] (or the REMQ_REDIS_URL environment "
                    "variable) at a running server.")


def probe_redis(url: str, timeout: float = 3.0, *, cluster: bool = False) -> None:
    """Fail fast, naming the URL (password hidden), when Redis does not answer (on a
    Cluster: when the slot map cannot be read from the node, or a master does not answer).
    Raises :class:`~django_remq.errors.RedisUnavailable`."""
    client: redis.Redis | None = None
    try:
        client = make_client(url, cluster=cluster, socket_timeout=timeout,
                             socket_connect_timeout=timeout)
        ping(client)
    except (redis.RedisError, redis.exceptions.RedisClusterException, OSError) as exc:
        raise RedisUnavailable(f"cannot reach Redis at {describe(url)} ({exc}). "
                               f"{START_REDIS_HINT}") from None
    finally:
        if client is not None:
            client.close()


def ping(client: redis.Redis | redis.cluster.RedisCluster) -> None:
    """PING; on a cluster every master (a plain ``ping()`` asks only one node)."""
    if isinstance(client, redis.cluster.RedisCluster):
        client.ping(target_nodes=redis.cluster.RedisCluster.PRIMARIES)
    else:
        client.ping()


def served_queues(tm: TaskManager, requested: Sequence[str] | None) -> list[str]:
    """``--queues``, else ``REMQ['QUEUES']``, else every queue that has a handler."""
    return list(requested or get_settings().queues or tm.queues)


def banner(tm: TaskManager, queues: Sequence[str], *, burst: bool) -> list[str]:
    lines = [f"remq worker: Redis {describe(get_settings().redis_url)}, prefix "
             f"{tm.keys.prefix!r}, concurrency {tm.concurrency}"
             + (", burst (exits when the queues are empty)" if burst else ""),
             f"queues: {', '.join(queues)}", "handlers:"]
    entries = [h for h in tm.handlers if h.queue in queues]
    for h in sorted(entries, key=lambda h: (h.queue, h.event)):
        fn = _written(h)
        lines.append(f"  {h.queue}: {h.event} -> {fn.__module__}.{fn.__qualname__}")
    if not entries:
        lines.append("  none (tasks in these queues will fail as unknown events)")
    return lines


def _written(entry: HandlerEntry) -> Any:
    """The handler as its author wrote it (the Django layer wraps each one)."""
    return getattr(entry.fn, "__wrapped__", entry.fn)


def run_worker(tm: TaskManager, queues: Sequence[str], *, burst: bool = False,
               handle_signals: bool = True) -> None:
    """Work until stopped: SIGTERM/SIGINT let running tasks finish (up to the shutdown
    timeout); a second signal exits at once (the unfinished tasks are then reclaimed
    by other workers after ``claim_idle_ms``).

    When more sync handlers are stuck past their timeouts than the worker keeps
    threads for, it stops gracefully and re-executes its own command line: the
    stuck threads go with the old process image, the same PID serves on."""
    try:
        asyncio.run(_serve(tm, queues, burst, handle_signals))
    except SyncThreadsExhausted as exc:
        log.error("restarting this worker (same command, same PID): %s", exc)
        restart_process()


def end_process(code: int = 0) -> NoReturn:
    """Leave a stopped worker at once. Its work is flushed and its entries handed back;
    what remains, the interpreter freeing every object of a loaded Django process, can
    take longer than the shutdown timeout the worker just kept. Exit handlers still run
    (logging's, a crash reporter's flush); threads left in stuck handlers are not waited for.
    """
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def restart_process() -> None:
    """Replace this process with a fresh run of the same command."""
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, *sys.orig_argv[1:]]
    os.execv(sys.executable, argv)


async def _serve(tm: TaskManager, queues: Sequence[str], burst: bool,
                 handle_signals: bool) -> None:
    stop = asyncio.Event()
    if handle_signals:
        _install_signals(stop)
    try:
        await tm.run(queues, burst=burst, stop_event=stop)
    finally:
        await tm.conn.aclose()


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if not stop.is_set():
            log.warning("%s: finishing running tasks, then exiting (send it again to stop now)",
                        name)
            stop.set()
            return
        log.warning("%s again: exiting now; unfinished tasks go to other workers", name)
        sys.stderr.flush()
        os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)


def configure_logging(verbosity: int) -> None:
    """``-v 0`` warnings, ``1`` (default) info, ``2``+ debug; leaves the user's LOGGING be."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("django_remq")
    logger.setLevel(level)
    if not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
