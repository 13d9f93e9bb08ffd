"""Where a worker's threads run (``REMQ['CPU_AFFINITY']``, ``--cpu-affinity``).

The default, ``"threads"``, keeps the threads that take turns on the GIL -- the event
loop and the plain ``def`` handlers' slot threads -- on one CPU core of their own, and
gives a handler's native work every CPU (:mod:`.shared_core`): sync handlers that wait
on I/O drain about as fast as ``async def`` ones, and numpy, a compressor or a program
a handler starts still use every core.

``"auto"`` or a list of CPUs pins each whole worker process to one CPU, native work
included (one CPU per process of ``--processes N``); ``None`` leaves every thread
wherever the OS puts it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence

log = logging.getLogger("django_remq.worker")

AUTO = "auto"
THREADS = "threads"
#: pinning needs Linux's per-thread affinity calls
SUPPORTED = hasattr(os, "sched_setaffinity")
#: what CPU_AFFINITY may hold: "threads" (the default), None (off), "auto", or CPU numbers
Spec = str | Sequence[int] | None


def parse(text: str) -> Spec:
    """``--cpu-affinity``'s value: ``threads``, ``none``, ``auto`` or CPU numbers (``0,2``)."""
    value = text.strip().lower()
    if value in ("", "none", "off"):
        return None
    if value in (AUTO, THREADS):
        return value
    try:
        return check(tuple(int(part) for part in value.split(",")))
    except ValueError:
        raise ValueError(f"--cpu-affinity {text!r}: give 'threads', 'auto', 'none' or CPU "
                         "numbers such as '0' or '0,2'") from None


def check(spec: Spec) -> Spec:
    """Refuse a value that is not ``"threads"``, ``None``, ``"auto"`` or non-negative CPU
    numbers."""
    if spec is None or spec in (AUTO, THREADS):
        return spec
    if isinstance(spec, str) or not spec or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in spec):
        raise ValueError(f"CPU affinity {spec!r}: give 'threads', 'auto', None or a list of "
                         "CPU numbers such as [0, 2]")
    return tuple(spec)


def cpus_for(spec: Spec, processes: int) -> list[int] | None:
    """One CPU per worker process, by its index under ``--processes N``: the CPUs given,
    or with ``auto`` those this process may use, taken round; ``None`` when not pinning
    whole processes."""
    spec = check(spec)
    if spec is None or spec == THREADS:
        return None
    if not SUPPORTED:
        raise ValueError("CPU affinity needs os.sched_setaffinity (Linux); leave "
                         "CPU_AFFINITY unset on this platform")
    allowed = sorted(os.sched_getaffinity(0))
    cpus: list[int] = allowed if isinstance(spec, str) else list(spec)  # str: "auto"
    outside = [c for c in cpus if c not in allowed]
    if outside:
        raise ValueError(f"CPU {outside[0]} is not one this process may run on (allowed: "
                         f"{', '.join(map(str, allowed))}); pick among those, or 'auto'")
    return [cpus[i % len(cpus)] for i in range(processes)]


def cpu_for(spec: Spec, index: int) -> int | None:
    """The CPU of worker process ``index`` (1-based) of :func:`cpus_for`."""
    cpus = cpus_for(spec, index)
    return None if cpus is None else cpus[-1]


def pin(cpu: int) -> None:
    """Every thread of this process, and the ones it starts later, on ``cpu`` (Linux's
    affinity is per thread: a new thread inherits its creator's)."""
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]  # no /proc: the calling thread, before the worker starts any
    for tid in threads:
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(tid, {cpu})
    log.info("worker pinned to CPU %d (pid %d)", cpu, os.getpid())
