"""The composition root (django_remq.api): the optional parts plug in through hooks that
``AppConfig.ready`` registers, and what they give is passed in at construction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from django_remq import api
from django_remq.backends.wiring import register_task_backends
from django_remq.consumers.delivery import sink_for
from django_remq.core import TaskManager
from django_remq.core.task_manager import ExposeServer

pytestmark = pytest.mark.unit


@pytest.fixture
def hooks() -> Iterator[api._Hooks]:
    """The hooks, put back as they were after the test."""
    sink, on_build = api._hooks.event_sink, list(api._hooks.on_build)
    yield api._hooks
    api._hooks.event_sink, api._hooks.on_build[:] = sink, on_build


def test_the_app_plugs_in_the_gateway_sink_and_the_tasks_backend() -> None:
    assert api._hooks.event_sink is sink_for
    assert register_task_backends in api._hooks.on_build


def test_a_build_hook_sees_the_manager_with_its_handlers(hooks: api._Hooks) -> None:
    seen: list[list[str]] = []
    api.add_build_hook(lambda tm: seen.append(tm.events_in("alpha")))
    api.add_build_hook(hooks.on_build[-1])  # once per hook
    tm = api.build_task_manager()
    assert len(seen) == 1
    assert "alpha.echo" in seen[0]
    tm.conn.close()


def test_the_sink_is_made_from_the_manager_as_it_is_built(hooks: api._Hooks) -> None:
    made: list[TaskManager] = []

    def sink(event: dict[str, Any]) -> None: ...

    def factory(tm: TaskManager) -> Any:
        made.append(tm)
        return sink

    async def serve(tm: TaskManager, port: int) -> Any: ...

    api.set_event_sink(factory)
    with_port = api.build_task_manager(expose=ExposeServer(4000, serve))
    assert (with_port.expose, with_port.expose_port, made) == (sink, 4000, [with_port])

    def given(event: dict[str, Any]) -> None: ...

    own = api.build_task_manager(expose=given)  # an EventSink given wins: no factory call
    assert (own.expose, made) == (given, [with_port])
    for tm in (with_port, own):
        tm.conn.close()
