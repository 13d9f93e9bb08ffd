"""``runworker_remq --processes N``: N worker processes under one supervisor.

Each child is a fresh interpreter running the very command line the supervisor was
started with, plus ``--processes 1`` (argparse keeps the last value). A child is
therefore exactly a single-process worker: Django settings, ``--settings`` and
``--pythonpath``, autodiscovery and the self re-exec after ``SyncThreadsExhausted``
(which replays ``sys.orig_argv``) all behave as they do without a supervisor. A
``multiprocessing`` child would break that re-exec (its argv is the spawn bootstrap)
and would set Django up a second way.

Children run in their own process group, so a Ctrl-C at the terminal reaches them
once, through the supervisor, and not twice (which would mean "stop now"). On Linux
each child also gets SIGTERM when the supervisor dies, so none is orphaned.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger("django_remq.supervisor")

BACKOFF_FIRST = 0.5  # seconds before restarting a child that died young
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 30.0  # a child that lived this long restarts at once (backoff reset)
POLL = 0.1


@dataclass
class Child:
    slot: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0  # consecutive early deaths, for the backoff
    restart_at: float | None = None
    signals_sent: int = 0  # stop signals forwarded to the current process
    finished: bool = False  # exited for good (burst done, or after a stop)
    returncode: int | None = None


@dataclass
class Supervisor:
    """Start ``processes`` copies of ``argv`` and keep them running until stopped.

    ``burst``: a child that exits 0 is done (not restarted); the supervisor returns
    when all are. Otherwise every exit that was not asked for is restarted, with a
    backoff (0.5 s doubling to 30 s) while children keep dying young."""

    argv: Sequence[str]
    processes: int
    burst: bool = False
    env: dict[str, str] | None = None
    #: one CPU per child, by slot (``affinity.cpus_for``): ``--cpu-affinity N`` appended
    cpus: Sequence[int] | None = None
    children: list[Child] = field(default_factory=list)
    stop_signal: int | None = None
    signals: int = 0  # stop signals taken
    pending: list[int] = field(default_factory=list)  # received, not yet taken
    forced: bool = False

    def run(self) -> int:
        """Supervise until every child has exited; returns the process exit code."""
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.children = [Child(slot) for slot in range(1, self.processes + 1)]
            for child in self.children:
                self._start(child)
            log.info("remq supervisor (pid %d): %d worker processes, pids %s", os.getpid(),
                     self.processes, ", ".join(str(c.proc.pid) for c in self.children if c.proc))
            while not all(c.finished for c in self.children):
                self._tick()
                time.sleep(POLL)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self._exit_code()

    def _tick(self) -> None:
        self._take_signals()
        now = time.monotonic()
        for child in self.children:
            if child.finished:
                continue
            if child.proc is None:
                if self.stop_signal is not None:
                    child.finished = True  # a pending restart is dropped on stop
                elif child.restart_at is not None and now >= child.restart_at:
                    self._start(child)
                continue
            code = child.proc.poll()
            if code is None:
                self._forward(child)
                continue
            child.returncode = code
            child.proc = None
            if self.stop_signal is not None or (self.burst and code == 0):
                child.finished = True
                continue
            self._schedule_restart(child, code, now)

    def _schedule_restart(self, child: Child, code: int, now: float) -> None:
        child.failures = 0 if now - child.started >= HEALTHY_AFTER else child.failures + 1
        delay = restart_delay(child.failures)
        log.error("worker process %d exited unexpectedly (%s); restarting it in %.1f s",
                  child.slot, describe_exit(code), delay)
        child.restart_at = now + delay

    def _start(self, child: Child) -> None:
        argv = list(self.argv)
        if self.cpus:  # argparse keeps the last value: this child's own CPU wins
            argv += ["--cpu-affinity", str(self.cpus[child.slot - 1])]
        child.proc = subprocess.Popen(argv, env=self.env, process_group=0,
                                      preexec_fn=_die_with_parent(os.getpid()))
        child.started = time.monotonic()
        child.restart_at = None
        child.signals_sent = 0
        log.debug("worker process %d started (pid %d)", child.slot, child.proc.pid)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Only note it: the main loop acts (no logging or sends inside a handler)."""
        self.pending.append(signum)

    def _take_signals(self) -> None:
        while self.pending:
            signum = self.pending.pop(0)
            name = signal.Signals(signum).name
            if self.stop_signal is None:
                self.stop_signal = signum
                log.warning("%s: stopping %d worker processes (each finishes its running "
                            "tasks; send it again to stop now)", name, self.processes)
            else:
                self.forced = True
                log.warning("%s again: worker processes stop now", name)
            self.signals += 1

    def _forward(self, child: Child) -> None:
        """Send the child the stop signals it has not had yet (also one started late)."""
        while child.proc is not None and child.signals_sent < self.signals:
            assert self.stop_signal is not None
            child.proc.send_signal(self.stop_signal)  # a no-op if it has just exited
            child.signals_sent += 1

    def _exit_code(self) -> int:
        codes = [c.returncode for c in self.children]
        if all(code == 0 for code in codes):
            return 0
        if self.forced and self.stop_signal is not None:
            return 128 + self.stop_signal
        return 1


def restart_delay(failures: int) -> float:
    """Seconds before a restart after ``failures`` early deaths in a row (0: at once)."""
    return 0.0 if failures <= 0 else min(BACKOFF_FIRST * 2 ** (failures - 1), BACKOFF_MAX)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def child_argv() -> list[str]:
    """This process's command line, as a single-process worker."""
    return [sys.executable, *sys.orig_argv[1:], "--processes", "1"]


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """Linux: ask the kernel to SIGTERM the child when the supervisor dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        pr_set_pdeathsig = 1
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)

    return preexec
