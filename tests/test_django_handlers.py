"""@handler declarations: autodiscovery, duplicates, options, the TaskManager build."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from django_remq import get_task_manager, handler
from django_remq.api import django_handler
from django_remq.decorators import registry
from django_remq.errors import (
    DuplicateHandler,
    ImproperlyConfiguredRemq,
    InvalidHandlerOptions,
    InvalidOptions,
)
from django_remq.testing import RemqTestEnv
from tests.remq_apps.alpha import tasks as alpha_tasks

pytestmark = pytest.mark.redis


@pytest.fixture
def scratch() -> Iterator[list[tuple[str, str]]]:
    """Declarations a test adds are removed afterwards: append (queue, event)."""
    added: list[tuple[str, str]] = []
    yield added
    for queue, event in added:
        registry.remove(queue, event)


def declared() -> dict[tuple[str, str], str]:
    return {(d.queue, d.event): d.fn_name for d in registry}


def test_autodiscovery_found_the_handlers_of_two_apps() -> None:
    found = declared()
    assert found[("alpha", "alpha.echo")] == "tests.remq_apps.alpha.tasks.echo"
    assert found[("beta", "beta.greet")] == "tests.remq_apps.beta.tasks.greet"


def test_bare_handler_uses_the_function_name() -> None:
    assert declared()[("alpha", "alpha_double")] == "tests.remq_apps.alpha.tasks.alpha_double"


def test_decorated_function_is_returned_unchanged() -> None:
    assert alpha_tasks.echo(type("T", (), {"data": 5})(), {}) == {"got": 5}


def test_options_are_recorded() -> None:
    decl = next(d for d in registry if d.event == "alpha.flaky")
    assert decl.options == {"attempts": 2, "retry_delay_ms": 300}


def test_task_manager_registers_every_declaration(remq: RemqTestEnv) -> None:
    tm = get_task_manager()
    assert tm.keys.prefix == remq.prefix
    entry = tm.handler_for("alpha", "alpha.flaky")
    assert entry is not None
    assert entry.options["attempts"] == 2
    assert entry.fn.__wrapped__ is alpha_tasks.flaky  # sync: wrapped for DB hygiene
    assert tm.handler_for("alpha", "alpha_double").fn is alpha_tasks.alpha_double  # async: as is
    assert {"alpha", "beta"} <= set(tm.queues)
    assert get_task_manager() is tm


def test_duplicate_event_names_both_functions(scratch: list[tuple[str, str]]) -> None:
    def one(task: Any, ctx: Any) -> None: ...

    def two(task: Any, ctx: Any) -> None: ...

    handler("dup.event", queue="scratch")(one)
    scratch.append(("scratch", "dup.event"))
    with pytest.raises(DuplicateHandler) as err:
        handler("dup.event", queue="scratch")(two)
    assert isinstance(err.value, ImproperlyConfiguredRemq)
    assert "test_duplicate_event_names_both_functions.<locals>.one" in str(err.value)
    assert "test_duplicate_event_names_both_functions.<locals>.two" in str(err.value)


def test_same_event_in_another_queue_is_fine(scratch: list[tuple[str, str]]) -> None:
    def one(task: Any, ctx: Any) -> None: ...

    handler("shared.event", queue="scratch-a")(one)
    handler("shared.event", queue="scratch-b")(one)
    scratch += [("scratch-a", "shared.event"), ("scratch-b", "shared.event")]
    assert ("scratch-b", "shared.event") in declared()


def test_late_declaration_reaches_the_built_manager(remq: RemqTestEnv,
                                                    scratch: list[tuple[str, str]]) -> None:
    tm = get_task_manager()

    @handler("late.event", queue="scratch")
    async def late(task: Any, ctx: Any) -> None: ...

    scratch.append(("scratch", "late.event"))
    assert get_task_manager().handler_for("scratch", "late.event") is not None
    assert get_task_manager() is tm


@pytest.mark.parametrize(("kwargs", "text"), [
    ({"should_retry": lambda e, n: True}, "processor setting"),
    ({"max_retries": 3}, "processor setting"),
    ({"attempt": 3}, "Did you mean 'attempts'"),
    ({"attempts": "3"}, "must be an int"),
    ({"attempts": 1, "retry_count": 1}, "use one"),
])
def test_bad_handler_options_fail_at_declaration(kwargs: dict[str, Any], text: str) -> None:
    def fn(task: Any, ctx: Any) -> None: ...

    with pytest.raises(InvalidHandlerOptions) as err:
        handler("bad.options", queue="scratch", **kwargs)(fn)
    assert text in str(err.value)
    assert isinstance(err.value, InvalidOptions)
    assert ("scratch", "bad.options") not in declared()


def test_bad_event_and_queue_names_fail() -> None:
    with pytest.raises(ImproperlyConfiguredRemq, match="string"):
        handler(42)  # type: ignore[call-overload]
    with pytest.raises(ImproperlyConfiguredRemq, match="queue name"):
        handler("x", queue="a:b")(lambda t, c: None)


def test_sync_wrapper_is_reused_so_rebuilds_do_not_collide() -> None:
    assert django_handler(alpha_tasks.echo) is django_handler(alpha_tasks.echo)
