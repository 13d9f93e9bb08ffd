"""An emit to a queue where this process's handler of the event is not registered is
refused at the call, by every emit way in: such a job would wait forever (no worker
reads that queue for it)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from django_remq import aemit, emit, emit_many, handler
from django_remq.core import TaskManager
from django_remq.decorators import registry
from django_remq.errors import InvalidOptions, QueueMismatch
from django_remq.sdk import Sdk
from django_remq.testing import RemqTestEnv

pytestmark = pytest.mark.redis

EVENT = "first-hour.generate-report"


def generate_report(task: Any, ctx: Any) -> None:
    """Declared in queue "default" by the fixture below."""


@pytest.fixture
def declared(remq: RemqTestEnv) -> Iterator[RemqTestEnv]:
    handler(EVENT, queue="default")(generate_report)
    yield remq
    registry.remove("default", EVENT)


def nothing_in(env: RemqTestEnv, queue: str = "nope") -> bool:
    tm = env.task_manager
    return tm.conn.sync.xlen(tm.keys.queue(queue).stream) == 0 and queue not in Sdk().get_queues()


def check_message(exc: pytest.ExceptionInfo[QueueMismatch]) -> None:
    text = str(exc.value)
    assert "queue 'default'" in text  # the queue the handler declared
    assert "test_first_hour_emit.generate_report" in text  # and which handler
    assert "queue='default'" in text  # the fix
    assert isinstance(exc.value, InvalidOptions)
    assert isinstance(exc.value, ValueError)


def test_emit_to_a_queue_without_the_handler_is_refused(declared: RemqTestEnv) -> None:
    with pytest.raises(QueueMismatch, match=r"emit\('first-hour.generate-report', "
                                            r"queue='nope'\)") as exc:
        emit(EVENT, data={"month": 5}, queue="nope", on_commit=False)
    check_message(exc)
    assert nothing_in(declared)
    job_id = emit(EVENT, data={"month": 5}, on_commit=False)  # the handler's queue: fine
    assert declared.get_job(job_id, "default") is not None


def test_emit_many_is_refused_before_anything_is_written(declared: RemqTestEnv) -> None:
    with pytest.raises(QueueMismatch) as exc:
        emit_many([{"event": EVENT, "queue": "default"}, {"event": EVENT, "queue": "nope"}],
                  on_commit=False)
    check_message(exc)
    assert nothing_in(declared)
    assert nothing_in(declared, "default")


async def test_aemit_is_refused(declared: RemqTestEnv) -> None:
    with pytest.raises(QueueMismatch) as exc:
        await aemit(EVENT, queue="nope", on_commit=False)
    check_message(exc)
    assert nothing_in(declared)


@pytest.mark.django_db(transaction=True)
def test_on_commit_emit_is_refused_at_the_call_not_at_commit(declared: RemqTestEnv) -> None:
    with transaction.atomic():
        with pytest.raises(QueueMismatch) as exc:
            emit(EVENT, queue="nope", on_commit=True)
        check_message(exc)
        with pytest.raises(QueueMismatch):
            emit_many([{"event": EVENT, "queue": "nope"}], on_commit=True)
    assert nothing_in(declared)


def test_only_a_process_that_knows_the_handler_refuses(make_tm: Any, r: Any,
                                                       prefix: str) -> None:
    producer: TaskManager = make_tm()  # no handlers here: they live in another service
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        job_id = producer.emit(EVENT, queue="nope")
    assert r.hget(f"{prefix}:{{nope}}:job:{job_id}", "name") == EVENT
    worker: TaskManager = make_tm()
    worker.register_handler(EVENT, generate_report)
    with pytest.raises(QueueMismatch, match=r"test_first_hour_emit\.generate_report"):
        worker.emit(EVENT, queue="nope")


def test_several_queues_without_a_queue_is_refused(make_tm: Any) -> None:
    tm: TaskManager = make_tm()
    tm.register_handler("resize", lambda t, c: None, queue="images")
    tm.register_handler("resize", lambda t, c: None, queue="thumbs")
    with pytest.raises(QueueMismatch, match=r"queues 'images' \(.*\), 'thumbs' \(.*\), so no "
                                            r"worker would run a job in 'default'"):
        tm.emit("resize")  # it used to go to "default", which no worker reads for it
    assert tm.emit("resize", queue="thumbs")


def test_a_resolver_of_the_queue_is_asked_first(make_tm: Any) -> None:
    """A Django task enqueued with ``using(queue_name=...)``: the Tasks backend's resolver
    finds it in its other queue, as a worker would."""
    tm: TaskManager = make_tm()
    tm.register_handler("app.tasks.add", lambda t, c: None, queue="dtasks")

    def resolve(queue: str, event: str) -> bool:
        if event != "app.tasks.add":
            return False
        tm.register_handler(event, lambda t, c: None, queue=queue)
        return True

    tm.register_resolver("dtasks-other", resolve)
    assert tm.emit("app.tasks.add", queue="dtasks-other")
    tm.register_handler("report", lambda t, c: None)
    with pytest.raises(QueueMismatch):
        tm.emit("report", queue="dtasks-other")  # the resolver does not know it


async def test_ctx_emit_and_aemit_are_refused(make_tm: Any, r: Any, prefix: str) -> None:
    tm: TaskManager = make_tm()
    refused: list[str] = []
    tm.register_handler(EVENT, lambda t, c: None)

    async def on_loop(task: Any, ctx: Any) -> None:
        for way in (lambda: ctx.emit(EVENT, queue="nope"),
                    lambda: ctx.aemit(EVENT, queue="nope")):
            try:
                result = way()
                if not isinstance(result, str):
                    await result
            except QueueMismatch as exc:
                refused.append(str(exc))

    def in_thread(task: Any, ctx: Any) -> None:
        try:
            ctx.emit(EVENT, queue="nope")
        except QueueMismatch as exc:
            refused.append(str(exc))

    tm.register_handler("parent-async", on_loop)
    tm.register_handler("parent-sync", in_thread)
    tm.emit_many([{"event": "parent-async"}, {"event": "parent-sync"}])
    await tm.run(burst=True)
    assert len(refused) == 3
    assert all("registered in queue 'default'" in text for text in refused)
    assert r.xlen(f"{prefix}:{{nope}}:stream") == 0
