"""The demo in a new user's first hour: a taken port fails at once with the fix, and the
demo on its embedded Redis stops on Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .workers import free_port, wait_until

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parent.parent
NO_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there: the demo embeds fakeredis


def demo_env(tmp_path: Path) -> dict[str, str]:
    environ = {**os.environ, "REMQ_REDIS_URL": NO_REDIS, "PYTHONUNBUFFERED": "1",
               "PYTHONFAULTHANDLER": "1",  # SIGABRT prints every thread's stack to the log
               "PYTHONPATH": str(ROOT), "REMQ_DEMO_DB": str(tmp_path / "demo.sqlite3")}
    environ.pop("DJANGO_SETTINGS_MODULE", None)
    return environ


def demo_command(addrport: str) -> list[str]:
    return [sys.executable, "example_project/manage.py", "remq_demo", addrport]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on (as a second demo or another server would)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_taken_port_fails_before_the_worker_starts_and_says_how_to_pick_another(
        taken_port: int, tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(demo_command(f"127.0.0.1:{taken_port}"), cwd=ROOT,
                          env=demo_env(tmp_path), capture_output=True, text=True, timeout=60,
                          check=False)
    elapsed = time.monotonic() - started
    assert proc.returncode != 0, proc.stdout + proc.stderr
    error = proc.stderr.strip()
    assert error == (f"CommandError: 127.0.0.1:{taken_port} is already in use (another "
                     "server, or a demo still running); pick another address: ./dev demo "
                     f"127.0.0.1:{taken_port + 1} (or manage.py remq_demo "
                     f"127.0.0.1:{taken_port + 1}).")
    assert "remq worker" not in proc.stdout  # checked before the worker starts
    assert elapsed < 30  # Django's start-up on a busy machine; no waiting on a server


def test_a_bare_port_is_checked_on_runservers_default_address(
        taken_port: int, tmp_path: Path) -> None:
    proc = subprocess.run(demo_command(str(taken_port)), cwd=ROOT, env=demo_env(tmp_path),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert f"127.0.0.1:{taken_port} is already in use" in proc.stderr


def serves(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


def as_in_a_terminal() -> None:
    """The demo's SIGINT as a terminal's Ctrl-C finds it: a suite started in the
    background of a script (``.ci/run &``) passes SIGINT on ignored, as POSIX shells
    do for background jobs, and an ignored signal stops nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_demo_on_its_embedded_redis_stops_on_a_signal(
        signum: signal.Signals, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "demo.log").open("w+")
    proc = subprocess.Popen(demo_command(f"127.0.0.1:{port}"), cwd=ROOT, env=demo_env(tmp_path),
                            stdout=log, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=as_in_a_terminal)
    try:
        assert wait_until(lambda: proc.poll() is not None or serves(f"http://127.0.0.1:{port}/"),
                          timeout=60, step=0.2)
        assert proc.poll() is None, Path(log.name).read_text()
        assert "started an in-process fakeredis server" in Path(log.name).read_text()
        proc.send_signal(signum)
        started = time.monotonic()
        try:  # it used to run on for ever; the bound leaves room for a busy CI host
            code = proc.wait(25)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # where it is stuck, in the log
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            pytest.fail(f"the demo still runs 25 s after {signum.name}: "
                        + Path(log.name).read_text()[-6000:])
        assert time.monotonic() - started < 25
        assert code in (0, -signum, 128 + signum), Path(log.name).read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
