"""What remq adds to a Django task: retries, timeouts and debounce, per task or per backend.

``@task(attempts=3, retry_delay_ms=500, timeout_ms=10_000, debounce=...)`` works because
the framework hands extra ``@task`` keywords to the backend's ``task_class``
(:class:`RemqTask`); ``TASKS[alias]["OPTIONS"]`` holds the backend-wide defaults. Both go
through the same validation and policies as ``@handler`` options.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import InvalidOptions
from ..core.options import validate_handler_options
from ..core.policies.debounce import DebounceSpec
from ..core.store.keys import validate_queue_name
from .compat import Task

#: the remq policies a Django task may set (on ``@task`` or in the backend's OPTIONS)
POLICY_KEYS = ("attempts", "retry_delay_ms", "timeout_ms", "debounce")
#: tasks validated in this process, by (backend alias, queue, module path)
_known: dict[tuple[str, str, str], Any] = {}
#: tasks declared while the apps loaded in a queue their backend does not list (remq.E105)
_unlisted: dict[tuple[str, str, str], Any] = {}


def remember(task: Any) -> None:
    _known[(task.backend, task.queue_name, task.module_path)] = task


def known_tasks(alias: str) -> list[Any]:
    return [t for (a, _, _), t in list(_known.items()) if a == alias]


def remember_unlisted(task: Any) -> None:
    _unlisted[(task.backend, task.queue_name, task.module_path)] = task


def unlisted_tasks(alias: str) -> list[Any]:
    return [t for (a, _, _), t in list(_unlisted.items()) if a == alias]


@dataclass(frozen=True, slots=True, kw_only=True)
class RemqTask(Task):  # type: ignore[misc]
    """A Django task with remq's policies; ``None`` means the backend's OPTIONS default."""

    attempts: int | None = None
    retry_delay_ms: int | None = None
    timeout_ms: int | None = None
    debounce: Any = None

    def __hash__(self) -> int:  # a debounce dict is not hashable; the function identifies
        return hash((self.func, self.queue_name, self.priority, self.backend))


def task_policies(task: Any) -> dict[str, Any]:
    """The policies set on the task itself (a plain framework ``Task`` has none)."""
    return {k: v for k in POLICY_KEYS if (v := getattr(task, k, None)) is not None}


def validate_policies(where: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Raise :class:`InvalidOptions` naming the fix, as ``@handler`` does."""
    unknown = [k for k in options if k not in POLICY_KEYS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], POLICY_KEYS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InvalidOptions(f"{where}: unknown option {unknown[0]!r}.{hint} Allowed: "
                             f"{', '.join(POLICY_KEYS)}.")
    try:
        opts = validate_handler_options(where, options)
        DebounceSpec.parse(where, opts.get("debounce"))
    except InvalidOptions as exc:  # the engine names the call it knows: name ours
        raise InvalidOptions(str(exc).replace(f"register_handler({where!r})", where)) from None
    return opts


@dataclass(frozen=True)
class OptionProblem:
    """One thing wrong with a RemqBackend's OPTIONS or QUEUES (a system check)."""

    id: str
    msg: str
    hint: str


def option_problems(alias: str, options: Any, queues: Any) -> list[OptionProblem]:
    """What ``check()`` reports; the same rules raise at enqueue time."""
    where = f"TASKS[{alias!r}]"
    if not isinstance(options, Mapping):
        return [OptionProblem("remq.E101", f"{where}['OPTIONS'] must be a dict, got "
                              f"{type(options).__name__}.",
                              f"Use a dict of defaults: {', '.join(POLICY_KEYS)}.")]
    found: list[OptionProblem] = []
    for key in options:
        if key not in POLICY_KEYS:
            close = difflib.get_close_matches(str(key), POLICY_KEYS, n=1)
            found.append(OptionProblem(
                "remq.E102", f"{where}['OPTIONS'] has unknown key {key!r}.",
                (f"Did you mean {close[0]!r}? " if close else "")
                + f"Allowed: {', '.join(POLICY_KEYS)}; Redis and worker settings go in REMQ."))
    if not found:
        try:
            validate_policies(f"{where}['OPTIONS']", options)
        except InvalidOptions as exc:
            found.append(OptionProblem("remq.E103", str(exc),
                                       "Fix the value; the same rules apply to @handler."))
    for queue in queues or ():
        try:
            validate_queue_name(queue)
        except ValueError as exc:
            found.append(OptionProblem("remq.E104", f"{where}['QUEUES']: {exc}",
                                       "Rename the queue: remq keys use it as a hash tag."))
    return found


def unlisted_queue(alias: str, task: Any, queues: set[str], configured: bool) -> OptionProblem:
    """``@task(queue_name=...)`` outside the backend's QUEUES (remq.E105), with the fix."""
    where = f"TASKS[{alias!r}]"
    listed = (f"{where}['QUEUES'] does not list it" if configured else
              f"{where} has no 'QUEUES', so it takes only the 'default' queue")
    return OptionProblem(
        "remq.E105", f"@task on {task.module_path} uses queue {task.queue_name!r}, but "
        f"{listed}.", f"Add it: {where}['QUEUES'] = {sorted({*queues, task.queue_name})!r} "
        "(or [] to allow any queue name).")
