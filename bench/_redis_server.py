"""Redis servers of a benchmark's own (the benchmarks that count commands or CPU share
these): nothing else talks to them, and nothing is saved; and the server's CPU."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis


def redis_cpu(client: redis.Redis) -> float:
    """Seconds of CPU the server has used (user + system: its socket work in it)."""
    info: dict[str, Any] = client.info("cpu")  # type: ignore[assignment]
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def delete_keys(client: Any, pattern: str, chunk: int = 5000) -> None:
    """Delete the keys matching ``pattern``, ``chunk`` to a ``DEL`` (on a cluster, keys
    of one slot: chunk 1000 with one prefix's keys)."""
    keys = list(client.scan_iter(pattern, count=5000))
    for i in range(0, len(keys), chunk):
        client.delete(*keys[i:i + chunk])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server(port: int, workdir: str, *extra: str) -> subprocess.Popen[bytes]:
    """``redis-server`` on ``port`` (localhost only, no persistence); ``extra``: options."""
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    return subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", workdir, "--save", "", "--appendonly", "no", *extra],
                            stdout=subprocess.DEVNULL)


def wait_ready(client: redis.Redis, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def private_redis() -> Iterator[str]:
    """The URL of a redis-server of this run's own, stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="remq-bench-redis-") as workdir:
        port = free_port()
        proc = server(port, workdir)
        client = redis.Redis(port=port)
        try:
            wait_ready(client)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            client.close()
            proc.terminate()
            proc.wait(10)
