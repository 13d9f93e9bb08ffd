"""emit / aemit / emit_many from Django code: JSON check at the call, on_commit."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.test import override_settings

from django_remq import TaskManager, aemit, aemit_many, emit, emit_many
from django_remq.core import jsonutil
from django_remq.errors import InvalidOptions
from django_remq.testing import RemqTestEnv

pytestmark = pytest.mark.redis


def stream_len(env: RemqTestEnv, queue: str = "alpha") -> int:
    tm = env.task_manager
    return int(tm.conn.sync.xlen(tm.keys.queue(queue).stream))


def test_emit_returns_the_id_of_a_waiting_job(remq: RemqTestEnv) -> None:
    job_id = emit("alpha.echo", data={"x": 1}, queue="alpha")
    job = remq.get_job(job_id, "alpha")
    assert job is not None
    assert (job.status, job.state.name, job.state.data) == ("waiting", "alpha.echo", {"x": 1})


def test_emit_picks_the_handlers_queue(remq: RemqTestEnv) -> None:
    job_id = emit("beta.greet", data="x")  # declared in queue "beta" only
    assert remq.get_job(job_id, "beta") is not None


def test_an_unknown_event_warns_at_the_callers_line(remq: RemqTestEnv) -> None:
    from django_remq.errors import UnknownEventWarning

    with pytest.warns(UnknownEventWarning, match="alpha.echo") as seen:
        emit("alpha.ecko", queue="alpha")
    assert seen[0].filename == __file__  # not a line in django_remq


def test_non_json_data_fails_at_the_call_naming_the_value(remq: RemqTestEnv) -> None:
    when = datetime.datetime(2030, 1, 2, 3, 4, tzinfo=datetime.UTC)
    with pytest.raises(TypeError) as err:
        emit("alpha.echo", data={"user": 1, "items": [1, {"when": when}]}, queue="alpha")
    text = str(err.value)
    assert "data['items'][1]['when']" in text
    assert "datetime" in text
    assert ".isoformat()" in text
    assert stream_len(remq) == 0


def test_non_json_data_in_emit_many_names_the_item(remq: RemqTestEnv) -> None:
    with pytest.raises(TypeError, match=r"emit_many item 1 .*data\['price'\] = Decimal"):
        emit_many([{"event": "alpha.echo", "queue": "alpha", "data": 1},
                   {"event": "alpha.echo", "queue": "alpha", "data": {"price": Decimal("1")}}])
    assert stream_len(remq) == 0


def test_wrong_level_option_in_emit_is_an_error(remq: RemqTestEnv) -> None:
    with pytest.raises(InvalidOptions, match="belongs to the handler"):
        emit("alpha.echo", queue="alpha", options={"debounce": 100})  # type: ignore[typeddict-unknown-key]
    with pytest.raises(InvalidOptions, match="processor setting"):
        emit("alpha.echo", queue="alpha", options={"should_retry": None})  # type: ignore[typeddict-unknown-key]


@pytest.mark.django_db(transaction=True)
def test_on_commit_defers_until_commit(remq: RemqTestEnv) -> None:
    with transaction.atomic():
        job_id = emit("alpha.echo", data=1, queue="alpha", on_commit=True)
        assert isinstance(job_id, str)
        assert job_id
        assert remq.get_job(job_id, "alpha") is None
        assert stream_len(remq) == 0
    job = remq.get_job(job_id, "alpha")
    assert job is not None
    assert job.status == "waiting"


@pytest.mark.django_db(transaction=True)
def test_on_commit_is_dropped_on_rollback(remq: RemqTestEnv) -> None:
    ids: list[str] = []

    def emit_then_fail() -> None:
        with transaction.atomic():
            ids.append(emit("alpha.echo", data=1, queue="alpha", on_commit=True))
            raise LookupError("rolled back")

    with pytest.raises(LookupError):
        emit_then_fail()
    job_id = ids[0]
    assert remq.get_job(job_id, "alpha") is None
    assert stream_len(remq) == 0


@pytest.mark.django_db(transaction=True)
def test_emit_on_commit_setting_and_data_snapshot(remq: RemqTestEnv,
                                                  settings: object) -> None:
    from django.conf import settings as dj

    with override_settings(REMQ={**dj.REMQ, "EMIT_ON_COMMIT": True}), transaction.atomic():
        data = {"n": 1}
        job_id = emit("alpha.echo", data=data, queue="alpha")
        data["n"] = 2  # changed after the call: the task gets what was emitted
        assert remq.get_job(job_id, "alpha") is None
        ids = emit_many([{"event": "alpha.echo", "queue": "alpha", "data": i} for i in range(3)])
    # leaving override_settings built a new manager; the jobs went to the same Redis keys
    job = remq.get_job(job_id, "alpha")
    assert job is not None
    assert job.state.data == {"n": 1}
    assert [remq.get_job(i, "alpha").state.data for i in ids] == [0, 1, 2]  # type: ignore[union-attr]


@pytest.mark.django_db
def test_django_capture_on_commit_callbacks(remq: RemqTestEnv,
                                            django_capture_on_commit_callbacks: object) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:  # type: ignore[operator]
        job_id = emit("alpha.echo", data=1, queue="alpha", on_commit=True)
    assert len(callbacks) == 1
    assert remq.get_job(job_id, "alpha") is None
    callbacks[0]()
    assert remq.get_job(job_id, "alpha") is not None


async def test_aemit(remq: RemqTestEnv) -> None:
    job_id = await aemit("alpha_double", data=4, queue="alpha")
    assert remq.get_job(job_id, "alpha") is not None
    with pytest.raises(TypeError, match=r"data\[0\] = <object"):
        await aemit("alpha_double", data=[object()], queue="alpha")
    await remq.arun_until_idle(queues=["alpha"])
    assert remq.get_job(job_id, "alpha").result == 8  # type: ignore[union-attr]


@pytest.mark.django_db
def test_on_commit_prepares_and_encodes_each_job_once(
        remq: RemqTestEnv, monkeypatch: pytest.MonkeyPatch,
        django_capture_on_commit_callbacks: Any) -> None:
    """Prepared at the call (checked, the id fixed, the data encoded), written as prepared
    at commit: nothing is checked or encoded again."""
    data = {"n": 1}
    prepares: list[str] = []
    encodes: list[bool] = []  # each: was it the emitted dict
    prepare, dumps_data = TaskManager.prepare, jsonutil.dumps_data

    def counted_prepare(self: TaskManager, event: str, *args: Any, **kwargs: Any) -> Any:
        prepares.append(event)
        return prepare(self, event, *args, **kwargs)

    def counted_dumps(value: Any, where: str) -> str:
        encodes.append(value is data)
        return dumps_data(value, where)

    monkeypatch.setattr(TaskManager, "prepare", counted_prepare)
    monkeypatch.setattr(jsonutil, "dumps_data", counted_dumps)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = emit("alpha.echo", data, queue="alpha", on_commit=True)
        data["n"] = 2
        assert remq.get_job(job_id, "alpha") is None
    assert (prepares, encodes) == (["alpha.echo"], [True])
    job = remq.get_job(job_id, "alpha")
    assert job is not None
    assert job.state.data == {"n": 1}  # what it was at the call


@pytest.mark.django_db(transaction=True)
def test_emit_many_on_commit_keeps_the_data_and_the_order_across_queues(
        remq: RemqTestEnv) -> None:
    items = [{"event": "alpha.echo", "queue": "alpha", "data": {"i": 0}},
             {"event": "beta.greet", "data": {"i": 1}},
             {"event": "alpha.echo", "queue": "alpha", "data": {"i": 2}}]
    with transaction.atomic():
        ids = emit_many(items, on_commit=True)
        for item in items:
            item["data"]["i"] += 10  # type: ignore[index]
        assert stream_len(remq) == 0
    queues = ["alpha", "beta", "alpha"]
    assert [remq.get_job(i, q).state.data for i, q in zip(ids, queues, strict=True)] == [  # type: ignore[union-attr]
        {"i": 0}, {"i": 1}, {"i": 2}]


@pytest.mark.django_db(transaction=True)
def test_aemit_many_on_commit_waits_for_the_callers_transaction(remq: RemqTestEnv) -> None:
    """Async code run from a thread in a transaction (async_to_sync): the write waits
    for that transaction, the one ``on_commit`` belongs to."""
    with transaction.atomic():
        ids = async_to_sync(aemit_many)([{"event": "alpha.echo", "queue": "alpha", "data": 1}],
                                        on_commit=True)
        assert remq.get_job(ids[0], "alpha") is None
    assert remq.get_job(ids[0], "alpha") is not None
