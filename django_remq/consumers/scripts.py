"""The gateway's Lua scripts (``lua/*.lua``), run like the engine's own.

The engine knows nothing of the gateway: what the gateway keeps in Redis (its
registries, :mod:`.keys`; a job's ``watch`` flag and ``owner``, extra record fields it
writes with its emits) it reads and writes with its own scripts, through the engine's
public script API: a :class:`~django_remq.core.store.scripts.Script` made from its
source, run as ``Call`` / ``Cmd`` steps by ``arun_many`` (EVALSHA, loaded again on
NOSCRIPT after a Redis restart, many steps in one round trip).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..core import TaskManager, jsonutil
from ..core.store.scripts import Call, Cmd, Script, Step, arun_many

__all__ = ["HOLD", "WATCH", "Call", "Cmd", "JobState", "load", "run", "watch"]


def load(name: str, *, idempotent: bool) -> Script:
    """``lua/<name>.lua`` of this package, as is (none of the engine's shared helpers);
    ``idempotent``: safe to send again after a lost connection (see ``Script``)."""
    source = resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")
    return Script(f"gateway_{name}", source, idempotent)


#: sets a flag and reads the record
WATCH = load("watch", idempotent=True)
#: again, the member is held already: it answers 1, with the same deadline
HOLD = load("hold", idempotent=True)


@dataclass(frozen=True)
class JobState:
    """A job as a gateway subscriber first sees it (see watch.lua)."""

    status: str
    progress: Any  # the last ``{"data", "progress"}`` a handler sent, or None
    owner: str | None  # the user who emitted it over the gateway
    finished_at: int | None
    error: str | None  # the last error's message
    name: str | None = None  # the event


def _text(value: Any) -> str | None:
    if not value:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _state(reply: Any) -> JobState | None:
    if not reply:
        return None
    status, progress, owner, finished_at, errors, name = (_text(x) for x in reply)
    last = jsonutil.loads(errors)[-1:] if errors else []
    return JobState(status or "waiting", jsonutil.loads(progress) if progress else None,
                    owner, int(finished_at) if finished_at else None,
                    str(last[0].get("message")) if last else None, name)


def watch(tm: TaskManager, queue: str, job_id: str, *, flag: bool,
          remember: bool = True) -> Call[JobState | None]:
    """Read a job's state; ``flag``: and mark it followed (its record's ``watch``).
    ``remember=False`` for a queue name a client gave (see ``Keys.queue``)."""
    key = tm.keys.queue(queue, remember=remember).job(job_id)
    return Call(WATCH, (key,), ["1" if flag else "0"], _state)


async def run(tm: TaskManager, steps: Sequence[Step]) -> list[Any]:
    """``steps`` in one round trip on ``tm``'s Redis; replies parsed, in order."""
    return await arun_many(tm.conn.aio, steps) if steps else []
