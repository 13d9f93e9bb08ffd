"""SlotThreads: where plain ``def`` handlers run, one long-lived thread per slot.

A worker runs at most ``concurrency`` tasks, so it keeps that many threads, fed
through one queue: a task costs a queue put and a wake-up, not an executor
round trip, and finished calls are handed back to the event loop in batches
(one ``call_soon_threadsafe`` for whatever finished meanwhile).

Python cannot stop a thread. A call given up on (past its timeout, cancelled,
the worker shutting down) is *abandoned*: its thread is written off and a fresh
one takes its slot at once, so the worker can always run ``concurrency`` tasks;
the abandoned thread exits when the call returns, its result unused. Abandoned
threads still cost memory and whatever the handler holds (a DB connection...),
so their number is capped: past ``max_abandoned`` still running, ``on_overflow``
is called (the Processor then stops the worker gracefully so it restarts clean).
The threads are daemons: a stuck handler never keeps the process from exiting.

With a :class:`~.shared_core.SharedCore` the slot threads and the loop share one CPU
core (the GIL's hand-overs stay on it), and a call that runs longer than
``LONG_CALL_S`` gets every CPU back: the loop watches while calls run.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from .shared_core import CROWD_CHECK_S, LONG_CALL_S, STRANGERS_CHECK_S, SharedCore

log = logging.getLogger("django_remq.threads")

QUEUED, RUNNING, DONE, CANCELLED = range(4)


class HandlerExit(RuntimeError):
    """A sync handler raised ``SystemExit``/``KeyboardInterrupt``: it fails the task, it
    does not stop the worker."""


class Call:
    """One function call on a slot thread; ``future`` resolves on the event loop."""

    __slots__ = ("args", "fn", "future", "slot", "started", "state")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...],
                 future: asyncio.Future[Any]) -> None:
        self.fn, self.args, self.future = fn, args, future
        self.state = QUEUED
        self.slot: _Slot | None = None
        self.started = 0.0  # time.monotonic() when it began running


class _Slot:
    __slots__ = ("abandoned", "call", "freed", "thread", "tid")

    def __init__(self) -> None:
        self.abandoned = False
        self.thread: threading.Thread | None = None
        self.tid = 0  # the thread's native id
        self.call: Call | None = None  # running now
        self.freed = False  # the running call was given every CPU (it ran long)


def run(call: Call) -> tuple[Any, bool]:
    """Call it: (its value, True), or (the exception, False)."""
    try:
        return call.fn(*call.args), True
    except Exception as exc:
        return exc, False
    except BaseException as exc:  # SystemExit in a handler fails its task only
        return HandlerExit(f"handler raised {type(exc).__name__}: {exc}"), False


class SlotThreads:
    def __init__(self, size: int, *, max_abandoned: int | None = None,
                 on_overflow: Callable[[int], None] | None = None,
                 name: str = "remq-task", core: SharedCore | None = None) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.max_abandoned = size if max_abandoned is None else max_abandoned
        self.on_overflow = on_overflow
        self.name = name
        self._work: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []
        self._abandoned = 0
        self._spawned = 0
        self._results: list[tuple[Call, bool, Any]] = []
        self._wake_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.core = core  # where the threads run (None: wherever the OS puts them)
        self._next_round: asyncio.TimerHandle | None = None
        self._next_crowd_check = self._next_strangers_check = 0.0

    @property
    def abandoned(self) -> int:
        """Abandoned calls whose threads are still running."""
        return self._abandoned

    @property
    def live_threads(self) -> int:
        """Live slot threads (not counting abandoned ones)."""
        return len(self._slots)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Call:
        """Run ``fn(*args)`` on a slot thread; await ``call.future`` on the loop."""
        if self._closed:
            raise RuntimeError("SlotThreads is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            if self.core is not None and not self.core.start():  # pins this, the loop's thread
                self.core = None
            for _ in range(self.size):  # started on first use: async-only workers have none
                self._spawn()
        call = Call(fn, args, loop.create_future())
        self._work.put(call)
        if self.core is not None and self._next_round is None:
            self._next_round = loop.call_later(LONG_CALL_S, self._round)
        return call

    def _round(self) -> None:
        """On the loop while calls run: a call past ``LONG_CALL_S`` gets every CPU; now and
        then, whether other processes crowd the core."""
        self._next_round = None
        core = self.core
        if core is None or self._closed:
            return
        now, busy, freed = time.monotonic(), False, False
        with self._lock:  # the slot thread re-pins itself under it, once its call is over
            for slot in self._slots:
                call = slot.call
                if call is None:
                    continue
                busy = True
                if not slot.freed and now - call.started > LONG_CALL_S:
                    slot.freed = freed = True
                    core.free(slot.tid)
        if freed or now >= self._next_strangers_check:  # threads a library started
            self._next_strangers_check = now + STRANGERS_CHECK_S
            core.free_strangers()
        if now >= self._next_crowd_check:
            self._next_crowd_check = now + CROWD_CHECK_S
            core.check_crowding()
        if busy or not self._work.empty():
            assert self._loop is not None
            self._next_round = self._loop.call_later(LONG_CALL_S, self._round)

    def abandon(self, call: Call) -> None:
        """Give up on ``call`` (on the loop): not started, it never will be; running, its
        thread is written off and replaced."""
        with self._lock:
            if call.state == QUEUED:
                call.state = CANCELLED
                return
            if call.state != RUNNING or call.slot is None:
                return
            slot = call.slot
            slot.abandoned = True
            slot.call = None
            self._slots.remove(slot)
            self._abandoned += 1
            abandoned = self._abandoned
        if self.core is not None:  # no longer one of the core's threads
            self.core.free(slot.tid)
        fn = getattr(call.fn, "__qualname__", repr(call.fn))
        if not self._closed:
            self._spawn()
            log.warning("sync handler %s abandoned, still running in thread %s (Python cannot "
                        "stop a thread); a new thread took its slot; %d abandoned now (cap %d)",
                        fn, slot.thread.name if slot.thread else "?", abandoned,
                        self.max_abandoned)
        if abandoned > self.max_abandoned and self.on_overflow is not None:
            self.on_overflow(abandoned)

    def close(self) -> None:
        """Idle threads exit; running (or abandoned) ones finish in the background."""
        if self._closed:
            return
        self._closed = True
        for _ in range(len(self._slots)):
            self._work.put(None)
        if self._next_round is not None:
            self._next_round.cancel()
            self._next_round = None
        if self.core is not None:  # the loop's thread and the core's lock let go
            self.core.stop()

    def _spawn(self) -> None:
        slot = _Slot()
        self._spawned += 1
        thread = threading.Thread(target=self._serve, args=(slot,), daemon=True,
                                  name=f"{self.name}-{self._spawned}")
        slot.thread = thread
        with self._lock:
            self._slots.append(slot)
        thread.start()

    def _serve(self, slot: _Slot) -> None:
        work, lock, core = self._work, self._lock, self.core
        slot.tid = threading.get_native_id()
        if core is not None:
            core.enter()
        while True:
            call = work.get()
            if call is None:
                if core is not None:
                    core.leave()
                return
            with lock:
                if call.state == CANCELLED:
                    continue
                call.state, call.slot = RUNNING, slot
                call.started = time.monotonic()
                slot.call = call
            value, ok = run(call)
            with lock:
                call.state = DONE
                slot.call = None
                freed, slot.freed = slot.freed, False
                if slot.abandoned:
                    self._abandoned -= 1
                    return
                self._results.append((call, ok, value))
                wake = not self._wake_pending
                self._wake_pending = True
            if core is not None:
                core.after_call(freed)
            if wake:
                assert self._loop is not None
                try:
                    self._loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: nobody waits for the result
                    return

    def _deliver(self) -> None:
        """On the loop: resolve every call that finished since the last wake-up."""
        with self._lock:
            results, self._results = self._results, []
            self._wake_pending = False
        for call, ok, value in results:
            fut = call.future
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
