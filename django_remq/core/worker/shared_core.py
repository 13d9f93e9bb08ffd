"""SharedCore: a worker's Python threads on one CPU core, its handlers' native work on all.

Plain ``def`` handlers run on slot threads (:mod:`.threads`) that take turns holding
the GIL with each other and with the event loop: every blocking call a handler makes
(a query, a Redis command) hands the GIL over twice. When those threads sit on
different cores, each hand-over wakes a thread on another core (an interrupt to it,
often a core out of an idle state); on 2 cores a handler that makes one Redis call
drained at about half the rate of the same handler written ``async def``. On one core
a hand-over is a plain switch, and the rates are level. Python runs on one core at a
time anyway, so the threads that take turns on the GIL lose nothing by sharing one.

What would lose is native code that leaves the GIL to use other cores, so a slot
thread gives its core up, for the rest of the call, as soon as its handler may start
such work:

* when it starts a program, a process or a thread, or imports a module or loads a
  library (Python's audit events say so before it happens: the child, the thread and
  a library's thread pool then start with every CPU; Python 3.11 has no event for a
  new thread);
* when its call has run longer than :data:`LONG_CALL_S` (the loop's watch).

Threads started from a pinned thread without an event (a C library's own, any on
3.11) inherit its core: the watch gives them every CPU when a call runs long, and
every :data:`STRANGERS_CHECK_S` while handlers run.

The core is claimed with a lock file per CPU (in the temp directory), so the workers
of one host (``--processes N`` too) take different cores; with none free, a worker
does not pin. Workers that cannot see each other's lock files (containers) may still
pick the same core: the watch notices when other processes keep a worker's core busy
and moves it to a quieter one, or gives pinning up. Linux only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("django_remq.worker")

SUPPORTED = sys.platform == "linux" and hasattr(os, "sched_setaffinity")
#: a handler call running longer than this gets every CPU back (seconds)
LONG_CALL_S = 0.02
#: how often a busy worker lets go threads it did not start that inherited its core
STRANGERS_CHECK_S = 1.0
#: how often a busy worker asks whether other processes crowd its core (seconds)
CROWD_CHECK_S = 5.0
#: share of the core other processes may use before the worker moves
CROWDED = 0.5
#: audit events after which a handler may run native code on other cores
FREEING_EVENTS = frozenset({
    "subprocess.Popen", "os.posix_spawn", "os.posix_spawnp", "os.spawn", "os.system",
    "os.fork", "os.forkpty", "os.exec", "_thread.start_new_thread",
    "_thread.start_joinable_thread", "import",
    "ctypes.dlopen", "os.startfile"})

#: of those, the ones that start a process: on the loop's thread too (an async handler)
SPAWN_EVENTS = frozenset({
    "subprocess.Popen", "os.posix_spawn", "os.posix_spawnp", "os.spawn", "os.system",
    "os.fork", "os.forkpty", "os.exec", "os.startfile"})

_local = threading.local()  # slot thread: .core, .freed; the loop's thread: .loop_core
_hooked = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in FREEING_EVENTS:
        core = getattr(_local, "core", None)
        try:
            if core is not None and not _local.freed:
                _local.freed = True
                core.free(0)
            elif event in SPAWN_EVENTS and getattr(_local, "loop_core", None) is not None:
                _local.loop_core.lend_loop()
        except Exception:  # an audit hook's error would fail what the handler does
            log.debug("could not free a worker thread's CPUs", exc_info=True)


def lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / "django-remq-cpus"


def cpu_times() -> dict[int, tuple[int, int]]:
    """Each CPU's (busy, total) clock ticks since boot, from ``/proc/stat``."""
    found: dict[int, tuple[int, int]] = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if not (name.startswith("cpu") and name[3:].isdigit()):
                continue
            ticks = [int(x) for x in fields[:8]]
            idle = ticks[3] + ticks[4]  # idle, iowait
            found[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return found


class SharedCore:
    """One worker's core. :meth:`start` on the loop thread (it claims a core and pins the
    loop); :meth:`enter` on each slot thread; :meth:`after_call` when its call returns."""

    def __init__(self, cpus: Iterable[int] | None = None) -> None:
        self.all = frozenset(cpus if cpus is not None else os.sched_getaffinity(0))
        self.cpu: int | None = None
        self._ours: set[int] = set()  # native ids of the threads pinned to the core
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._last: tuple[float, float, dict[int, tuple[int, int]]] | None = None

    @property
    def pinned(self) -> bool:
        return self.cpu is not None

    def start(self) -> bool:
        """Claim a core no other worker of this host holds and pin the calling thread (the
        loop's) to it; ``False`` (and nothing pinned) when there is none to claim."""
        global _hooked
        if not SUPPORTED or len(self.all) < 2:
            return False
        try:
            if not self._claim(self.all):
                return False
        except OSError as exc:  # no writable temp directory: run as if every core were taken
            log.info("worker threads not pinned: cannot claim a CPU in %s (%s)", lock_dir(), exc)
            return False
        if not _hooked:  # one hook per process; it acts on slot threads only
            sys.addaudithook(_audit)
            _hooked = True
        self.enter(slot=False)
        log.info("worker threads on CPU %d (pid %d); handlers' native work keeps every CPU",
                 self.cpu, os.getpid())
        return True

    def _claim(self, cpus: Iterable[int]) -> bool:
        folder = lock_dir()
        folder.mkdir(parents=True, exist_ok=True)
        order = sorted(cpus)
        shift = os.getpid() % len(order)  # unlocked peers (containers) spread out
        for cpu in order[shift:] + order[:shift]:
            try:  # another user's lock file (a shared /tmp) cannot be opened: taken
                f = open(folder / f"cpu-{cpu}.lock", "a")  # noqa: SIM115 (held while pinned)
            except OSError:
                continue
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                continue
            old, self._file, self.cpu = self._file, f, cpu
            if old is not None:
                old.close()
            return True
        return False

    def enter(self, *, slot: bool = True) -> None:
        """Pin the calling thread; on a slot thread, watch what its handlers do."""
        tid = threading.get_native_id()
        with self._lock:
            if self.cpu is None:
                return
            self._ours.add(tid)
            try:
                os.sched_setaffinity(tid, {self.cpu})
                failed = None
            except OSError as exc:  # the CPU went offline, a cgroup's cpuset changed...
                failed = exc
        if failed is not None:
            log.warning("worker threads no longer pinned: CPU %s refused (%s)", self.cpu, failed)
            self.stop()
            return
        if slot:
            _local.core, _local.freed = self, False
        else:
            _local.loop_core = self

    def lend_loop(self) -> None:
        """The loop's thread starts a process (an async handler, a re-exec): it gets every
        CPU first, so the child does too; the loop's next turn pins it again."""
        self.free(0)
        try:
            asyncio.get_running_loop().call_soon(self.enter_loop)
        except RuntimeError:  # no loop runs here any more: the thread stays free
            _local.loop_core = None

    def enter_loop(self) -> None:
        self.enter(slot=False)

    def leave(self) -> None:
        """A slot thread that ends (or is abandoned) stops being one of the core's."""
        self.free(threading.get_native_id())
        _local.core = None

    def free(self, tid: int) -> None:
        """Give thread ``tid`` (0: the calling one) every CPU."""
        native = tid or threading.get_native_id()
        with self._lock:
            self._ours.discard(native)
            with contextlib.suppress(OSError):  # it ended
                os.sched_setaffinity(native, self.all)

    def after_call(self, freed: bool) -> None:
        """On a slot thread whose call returned: back on the core if the call left it (it
        ran long: ``freed``; or it started something)."""
        if freed or getattr(_local, "freed", False):
            self.enter()

    def free_strangers(self) -> None:
        """Threads that are not the worker's (a library started them from a pinned thread)
        get every CPU."""
        if self.cpu is None:
            return
        try:
            tids = [int(t) for t in os.listdir("/proc/self/task")]
        except OSError:
            return
        for tid in tids:
            if tid in self._ours:
                continue
            try:
                if os.sched_getaffinity(tid) == {self.cpu}:
                    os.sched_setaffinity(tid, self.all)
            except OSError:
                pass

    def check_crowding(self, coin: Callable[[], float] = random.random) -> None:
        """On the loop, every :data:`CROWD_CHECK_S` while handlers run: if other processes
        kept this core busy since the last check, move to the quietest unclaimed one, or
        stop pinning. Of two workers crowding each other, ``coin`` picks the one to move."""
        if self.cpu is None:
            return
        now, times = time.monotonic(), os.times()
        mine = times.user + times.system
        try:
            ticks = cpu_times()
        except (OSError, ValueError):  # no /proc: nothing to compare
            return
        last, self._last = self._last, (now, mine, ticks)
        if last is None or self.cpu not in ticks or self.cpu not in last[2]:
            return
        _, mine_then, ticks_then = last
        busy = ticks[self.cpu][0] - ticks_then[self.cpu][0]
        total = ticks[self.cpu][1] - ticks_then[self.cpu][1]
        if total <= 0:
            return
        hz = os.sysconf("SC_CLK_TCK")
        others = max(busy / hz - (mine - mine_then), 0.0) / (total / hz)
        if others < CROWDED or coin() < 0.5:
            return
        quiet = sorted((c for c in self.all if c != self.cpu and c in ticks and c in ticks_then),
                       key=lambda c: (ticks[c][0] - ticks_then[c][0]))
        old = self.cpu
        if quiet and self._claim(quiet[:1]):
            self._move()
            log.info("other processes used %.0f%% of CPU %d: worker threads moved to CPU %d",
                     100 * others, old, self.cpu)
        else:
            self.stop()
            log.info("other processes used %.0f%% of CPU %d and no quieter CPU is free: worker "
                     "threads no longer pinned", 100 * others, old)

    def _move(self) -> None:
        with self._lock:
            assert self.cpu is not None
            for tid in list(self._ours):
                try:
                    os.sched_setaffinity(tid, {self.cpu})
                except OSError:  # ended meanwhile
                    self._ours.discard(tid)

    def stop(self) -> None:
        """Every thread back on every CPU; the core's lock given up."""
        with self._lock:
            self.cpu = None
            ours, self._ours = self._ours, set()
            for tid in ours:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(tid, self.all)
            if self._file is not None:
                self._file.close()
                self._file = None
