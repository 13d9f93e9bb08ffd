"""TaskManager.register_resolver: handlers found on demand (what the Django Tasks backend
uses to run a task met in a served queue). Pure engine, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from django_remq.core import TaskManager

pytestmark = pytest.mark.unit


def handler(task: Any, ctx: Any) -> None:
    return None


def test_a_miss_asks_the_resolver_once_it_registers() -> None:
    tm = TaskManager.init(db="redis://127.0.0.1:6379/15", prefix="unused")
    asked: list[tuple[str, str]] = []

    def resolve(queue: str, event: str) -> bool:
        asked.append((queue, event))
        if event != "pkg.mod.fn":
            return False
        tm.register_handler(event, handler, queue, {"attempts": 2})
        return True

    tm.register_resolver("jobs", resolve)
    assert tm.queues == ["jobs"]  # a resolver's queue is served
    assert tm.handler_for("jobs", "other") is None
    entry = tm.handler_for("jobs", "pkg.mod.fn")
    assert entry is not None
    assert (entry.fn, entry.options) == (handler, {"attempts": 2})
    assert tm.handler_for("jobs", "pkg.mod.fn") is entry  # registered: not asked again
    assert asked == [("jobs", "other"), ("jobs", "pkg.mod.fn")]
    assert tm.handler_for("elsewhere", "pkg.mod.fn") is None  # only its queue


def test_a_resolver_for_every_queue_adds_no_served_queue() -> None:
    tm = TaskManager.init(db="redis://127.0.0.1:6379/15", prefix="unused")
    tm.register_resolver(None, lambda q, e: tm.register_handler(e, handler, q) is None)
    assert tm.queues == ["default"]
    assert tm.handler_for("any", "x.y") is not None


def test_a_bad_queue_name_is_refused() -> None:
    tm = TaskManager.init(db="redis://127.0.0.1:6379/15", prefix="unused")
    with pytest.raises(ValueError, match="may not contain"):
        tm.register_resolver("a:b", lambda q, e: False)
