"""Debounce per handler, enforced in Redis so it holds across every worker and process.

``register_handler(..., options={"debounce": 5000})``: the handler runs at most once
per 5 s window; ``{"debounce": {"window_ms", "mode", "key", "max_wait_ms"}}``
chooses more. Windows are per queue and per event; by default one window covers the
whole handler (so three quick emits run once), and ``key(message)`` splits it finer,
e.g. ``"key": lambda m: m.data["user_id"]`` for one window per user, or
``lambda m: m.id`` for the original remq's per-job default (re-emits of one id).

``mode="leading"`` (default) -- checked by the worker when a job is about to run
  for the first time. The first job with a key runs and holds the window for
  ``window_ms`` from the start of its run; any other job with the same key that
  comes up for its first run inside the window is not run: it ends ``cancelled``
  with a log line on its record saying which job held the window (and a worker
  log line). Retries and redeliveries of the holder are never skipped; skipped
  jobs do not extend the window. Costs one Redis call per run of a debounced
  handler only.

``mode="trailing"`` -- applied when the task is emitted. The first emit for a key
  creates a job that is ``delayed`` by ``window_ms``; each further emit while it is
  still waiting replaces its data (and options) with the latest and moves its
  run to ``window_ms`` after this emit -- never later than ``max_wait_ms`` after
  the first emit, if set. So a burst of emits runs once, with the latest data,
  once the burst has been quiet for ``window_ms``. ``emit`` returns the id of the
  job that will run (the pending one when merged); each merged emit leaves a log
  line on that job and counts in its ``debounced`` field. Once the job has
  started, the next emit starts a new window. The ``key`` function receives a
  :class:`Message` built from the emit (its ``record`` is provisional). The
  emitting TaskManager must have the handler registered (the Django layer
  registers every handler in every process); ``ctx.emit`` called on the event
  loop returns the new id before the merge is known -- use ``ctx.aemit`` there
  if you need the id of the job that will run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .. import jsonutil
from ..errors import InvalidOptions
from ..options import MAX_MS
from ..store import scripts
from ..store.calls import NewJob, Outcome
from ..store.connection import Connection
from ..store.keys import Keys, QueueKeys
from ..store.scripts import Arg, Call, arun
from ..types import Message

log = logging.getLogger("django_remq.debounce")

DEBOUNCE_KEYS = frozenset({"window_ms", "mode", "key", "max_wait_ms"})
MAX_MERGE_LOGS = 100
KeyFn = Callable[[Message], Any]


@dataclass(frozen=True)
class DebounceSpec:
    """A validated ``debounce`` handler option."""

    window_ms: int
    mode: Literal["leading", "trailing"] = "leading"
    key: KeyFn | None = None
    max_wait_ms: int = 0

    @classmethod
    def parse(cls, event: str, value: Any, where: str | None = None) -> DebounceSpec | None:
        """``where`` names the declaration in errors (default: ``register_handler(event)``)."""
        where = f"{where or f'register_handler({event!r})'}: 'debounce'"
        if value is None:
            return None
        plain = isinstance(value, int) and not isinstance(value, bool)
        if not (1 <= value <= MAX_MS if plain else
                isinstance(value, Mapping) and not set(value) - DEBOUNCE_KEYS):
            raise InvalidOptions(
                f"{where} must be a positive whole number of milliseconds (at most {MAX_MS}), "
                f"e.g. debounce=5000, or a dict with {', '.join(sorted(DEBOUNCE_KEYS))}, e.g. "
                f"{{'window_ms': 5000, 'mode': 'trailing'}}; got {value!r}")
        if plain:
            value = {"window_ms": value}
        window, mode = value.get("window_ms"), value.get("mode", "leading")
        max_wait, key = value.get("max_wait_ms", 0), value.get("key")
        for name, num in (("window_ms", window), ("max_wait_ms", max_wait)):
            if not isinstance(num, int) or isinstance(num, bool) or num < 0 or (
                    name == "window_ms" and num < 1) or num > MAX_MS:
                raise InvalidOptions(f"{where}: {name!r} must be a positive int (ms, at most "
                                     f"{MAX_MS}), got {num!r}")
        if mode not in ("leading", "trailing"):
            raise InvalidOptions(f"{where}: 'mode' must be 'leading' or 'trailing', got {mode!r}")
        if key is not None and not callable(key):
            raise InvalidOptions(f"{where}: 'key' must be a function (message) -> str")
        if max_wait and mode != "trailing":
            raise InvalidOptions(f"{where}: 'max_wait_ms' only applies to mode='trailing'")
        assert isinstance(window, int)
        return cls(window, mode, key, max_wait)

    def key_of(self, message: Message) -> str:
        """The debounce key: ``""`` (the whole handler, i.e. event + queue) by default."""
        return "" if self.key is None else str(self.key(message))


def provisional_message(job_id: str, event: str, queue: str, data: Any,
                        options: Mapping[str, Any]) -> Message:
    """What a trailing ``key`` function sees at emit time."""
    return Message(job_id, "", queue, event, data, dict(options),
                   timestamp=int(time.time() * 1000))


def emit_call(qk: QueueKeys, event: str, key: str, spec: DebounceSpec, job: NewJob
              ) -> Call[str]:
    """Trailing-edge emit (debounce_emit.lua); the reply is the id that will run."""
    line = jsonutil.dumps({"message": "debounced: a later emit replaced this job's data",
                           "timestamp": int(time.time() * 1000)})
    args: list[Arg] = [qk.job_prefix, qk.logs_prefix, spec.window_ms, spec.max_wait_ms, line,
                       MAX_MERGE_LOGS, *job.fields]
    return Call(scripts.DEBOUNCE_EMIT, (*qk.script_keys, qk.debounce(event, key)), args,
                lambda r: r.decode() if isinstance(r, bytes) else str(r))


class DebounceManager:
    """The original remq's per-handler debouncer, with its state in Redis instead of memory."""

    def __init__(self, conn: Connection, keys: Keys) -> None:
        self.conn, self.keys = conn, keys
        # Claims go out one at a time, in the order the jobs came up: jobs delivered
        # together would otherwise race over the connection pool, and a later job of a key
        # could take the window from the one before it. asyncio.Lock is first come, first
        # served; only debounced handlers wait on it.
        self._in_order: asyncio.Lock | None = None

    async def check(self, message: Message, spec: DebounceSpec, log_line: Callable[[str], None]
                    ) -> Outcome | None:
        """``None``: run the job. Otherwise the ``cancelled`` outcome of a skipped one.

        Only leading-edge debounce acts here, and only on a job's first attempt.
        """
        if spec.mode != "leading" or message.retried_attempts:
            return None
        key = spec.key_of(message)
        token = f"{message.id}:{message.timestamp}"
        qk = self.keys.queue(message.queue)
        call: Call[list[Any]] = Call(scripts.DEBOUNCE, (qk.debounce(message.name, key),),
                                     [token, spec.window_ms], list)
        if self._in_order is None:  # made on the worker's loop
            self._in_order = asyncio.Lock()
        async with self._in_order:
            reply = await arun(self.conn.aio, call)
        if int(reply[0]) == 1:
            return None
        holder = str(reply[1]).rsplit(":", 1)[0]
        reason = (f"debounced: job {holder} ran with debounce key {key!r} less than "
                  f"{spec.window_ms} ms ago ({int(reply[2])} ms of the window left)")
        log.info("job %s (%s) skipped, %s", message.id, message.name, reason)
        log_line(reason)
        return Outcome(message.entry_id, message.id, "cancelled", {"reason": reason})
