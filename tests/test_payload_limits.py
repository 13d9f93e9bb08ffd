"""The payload limit (``max_payload_bytes``, ``REMQ["MAX_PAYLOAD_BYTES"]``) at every way
in: emit, aemit, emit_many, ctx.emit / ctx.aemit, the Django emits, the Tasks backend and
the gateway; a handler's result over it fails the job; a long log line is cut."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

import django_remq
from django_remq.backends.compat import TaskResultStatus, task_backends, task_finished
from django_remq.conf import problems
from django_remq.core import TaskManager
from django_remq.core.options import MAX_PAYLOAD_BYTES
from django_remq.core.sdk import Sdk
from django_remq.core.worker.task import MAX_LOG_CHARS
from django_remq.errors import InvalidOptions, PayloadTooLarge
from django_remq.testing import RemqTestEnv, remq_test_settings
from tests.payload_tasks import big_result, takes

from .gateway_helpers import ADA, connect, gateway_env

pytestmark = pytest.mark.redis

LIMIT = 1000


def jobs_in(tm: TaskManager, queue: str = "default") -> int:
    return int(Sdk(tm.conn.sync, prefix=tm.keys.prefix).get_queue_stats(queue).total)


def assert_names_the_fix(exc: PayloadTooLarge, size: int, limit: int) -> None:
    text = str(exc)
    assert (exc.size, exc.limit) == (size, limit)
    assert f"{size:,} bytes" in text
    assert f"limit of {limit:,} bytes" in text
    assert "REMQ['MAX_PAYLOAD_BYTES']" in text
    assert "reference" in text


# -- the engine's emits ----------------------------------------------------------------


def test_emit_refuses_data_over_the_limit_and_writes_nothing(make_tm: Any) -> None:
    tm = make_tm(max_payload_bytes=LIMIT)
    tm.register_handler("upload", lambda task, ctx: None)
    data = {"blob": "x" * LIMIT}
    with pytest.raises(PayloadTooLarge) as caught:
        tm.emit("upload", data=data)
    assert_names_the_fix(caught.value, len(json.dumps(data, separators=(",", ":"))), LIMIT)
    assert "emit('upload'): data is" in str(caught.value)
    assert isinstance(caught.value, InvalidOptions)
    assert isinstance(caught.value, ValueError)
    assert jobs_in(tm) == 0
    fits = "x" * (LIMIT - 2)  # '"' + text + '"': exactly the limit
    tm.emit("upload", data=fits)
    assert jobs_in(tm) == 1


def test_the_limit_counts_utf8_bytes_not_characters(make_tm: Any) -> None:
    tm = make_tm(max_payload_bytes=LIMIT)
    tm.register_handler("upload", lambda task, ctx: None)
    two_bytes = "é" * 400  # 402 characters of JSON, 802 bytes: fits
    tm.emit("upload", data=two_bytes)
    with pytest.raises(PayloadTooLarge) as caught:
        tm.emit("upload", data="é" * 500)  # 502 characters, 1,002 bytes
    assert caught.value.size == 1002
    with pytest.raises(PayloadTooLarge):
        tm.emit("upload", data="\U0001f600" * 250)  # 252 characters, 1,002 bytes
    assert jobs_in(tm) == 1


def test_the_default_is_one_mib_and_none_turns_it_off(make_tm: Any) -> None:
    assert MAX_PAYLOAD_BYTES == 1_048_576
    tm = make_tm()
    tm.register_handler("upload", lambda task, ctx: None)
    assert tm.max_payload_bytes == MAX_PAYLOAD_BYTES
    with pytest.raises(PayloadTooLarge) as caught:
        tm.emit("upload", data="x" * MAX_PAYLOAD_BYTES)
    assert caught.value.limit == MAX_PAYLOAD_BYTES
    tm.emit("upload", data="x" * (MAX_PAYLOAD_BYTES - 2))
    off = make_tm(max_payload_bytes=None)
    off.register_handler("upload", lambda task, ctx: None)
    off.emit("upload", data="x" * (2 * MAX_PAYLOAD_BYTES))
    assert jobs_in(tm) == 2


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "1MB"])
def test_a_bad_limit_is_refused_with_the_fix(redis_url: str, bad: Any) -> None:
    with pytest.raises(InvalidOptions, match=r"max_payload_bytes must be an int >= 1 .* None"):
        TaskManager.init(db=redis_url, max_payload_bytes=bad)


async def test_aemit_and_emit_many_refuse_it_too(make_tm: Any) -> None:
    tm = make_tm(max_payload_bytes=LIMIT)
    tm.register_handler("upload", lambda task, ctx: None)
    big = "x" * (2 * LIMIT)
    with pytest.raises(PayloadTooLarge, match=r"emit\('upload'\): data is 2,002 bytes"):
        await tm.aemit("upload", data=big)
    items = [{"event": "upload", "data": 1}, {"event": "upload", "data": big}]
    with pytest.raises(PayloadTooLarge):
        tm.emit_many(items)
    with pytest.raises(PayloadTooLarge):
        await tm.aemit_many(items)
    assert jobs_in(tm) == 0  # a refused item stops the whole batch before any write


async def test_ctx_emit_and_aemit_refuse_it_from_every_kind_of_handler(make_tm: Any) -> None:
    tm = make_tm(max_payload_bytes=LIMIT)
    big = "x" * (2 * LIMIT)

    def sync_parent(task: Any, ctx: Any) -> str:  # ctx.emit from a handler's thread
        try:
            ctx.emit("child", data=big)
        except PayloadTooLarge as exc:
            return f"refused: {exc.size}"
        return "written"

    async def async_parent(task: Any, ctx: Any) -> list[str]:  # on the loop: both ways
        out = []
        try:
            ctx.emit("child", data=big)
            out.append("written")
        except PayloadTooLarge as exc:
            out.append(f"refused: {exc.size}")
        try:
            await ctx.aemit("child", data=big)
            out.append("written")
        except PayloadTooLarge as exc:
            out.append(f"refused: {exc.size}")
        return out

    tm.register_handler("sync-parent", sync_parent)
    tm.register_handler("async-parent", async_parent)
    tm.register_handler("child", lambda task, ctx: None)
    ids = [tm.emit("sync-parent"), tm.emit("async-parent")]
    await tm.run(burst=True)
    sdk = Sdk(tm.conn.sync, prefix=tm.keys.prefix)
    results = [sdk.get_job(i, "default").result for i in ids]  # type: ignore[union-attr]
    assert results == ["refused: 2002", ["refused: 2002", "refused: 2002"]]
    assert sdk.get_queue_stats("default").total == 2  # no child was written


# -- results and logs ------------------------------------------------------------------


async def test_a_result_over_the_limit_fails_the_job_and_is_not_stored(make_tm: Any) -> None:
    tm = make_tm(max_payload_bytes=200_000)
    tm.register_handler("report", lambda task, ctx: "r" * task.data)
    over, under = tm.emit("report", data=300_000), tm.emit("report", data=150_000)
    await tm.run(burst=True)
    sdk = Sdk(tm.conn.sync, prefix=tm.keys.prefix)
    failed, done = sdk.get_job(over, "default"), sdk.get_job(under, "default")
    assert failed is not None
    assert done is not None
    assert failed.status == "failed"
    assert failed.result is None
    assert failed.errors[-1].type == "PayloadTooLarge"
    assert "the result of handler 'report'" in failed.errors[-1].message
    assert "300,002 bytes" in failed.errors[-1].message
    assert "limit of 200,000 bytes" in failed.errors[-1].message
    assert len(tm.conn.sync.hget(f"{tm.keys.queue('default').job_prefix}{over}", "errors")
               ) < 20_000
    assert done.status == "completed"
    assert done.result == "r" * 150_000  # stored whole under the limit


@pytest.mark.parametrize("kind", ["def", "async def"])
async def test_a_progress_update_over_the_limit_or_not_json_is_the_handlers_error(
        make_tm: Any, kind: str) -> None:
    """ctx.socket.update encodes and measures in the handler's own thread (a sync
    handler's too): what cannot be stored raises there, naming the job, and nothing of it
    is written; what fits is stored as before."""
    tm = make_tm(max_payload_bytes=10_000)
    caught: list[Exception] = []

    def update(ctx: Any, data: Any) -> None:
        try:
            ctx.socket.update(data, 50)
        except (PayloadTooLarge, TypeError) as exc:
            caught.append(exc)

    def sync_handler(task: Any, ctx: Any) -> str:
        update(ctx, {"blob": "x" * 20_000})
        update(ctx, {"when": object()})
        update(ctx, {"fits": "y" * 100})
        return "done"

    async def async_handler(task: Any, ctx: Any) -> str:
        return sync_handler(task, ctx)

    tm.register_handler("report", sync_handler if kind == "def" else async_handler)
    job_id = tm.emit("report")
    await tm.run(burst=True)
    job = Sdk(tm.conn.sync, prefix=tm.keys.prefix).get_job(job_id, "default")
    assert job is not None
    assert job.status == "completed"
    assert job.progress == {"data": {"fits": "y" * 100}, "progress": 50}
    too_large, not_json = caught
    assert isinstance(too_large, PayloadTooLarge)
    assert f"ctx.socket.update in job {job_id}" in str(too_large)
    assert "limit of 10,000 bytes" in str(too_large)
    assert isinstance(not_json, TypeError)
    assert f"ctx.socket.update in job {job_id}: data['data']['when']" in str(not_json)


async def test_a_long_log_line_is_cut_with_a_marker(make_tm: Any) -> None:
    tm = make_tm()

    def chatty(task: Any, ctx: Any) -> None:
        task.logger("short line")
        task.logger("y" * (MAX_LOG_CHARS * 10))
        task.logger("z" * MAX_LOG_CHARS)  # at the bound: kept whole

    tm.register_handler("chatty", chatty)
    job_id = tm.emit("chatty")
    await tm.run(burst=True)
    job = Sdk(tm.conn.sync, prefix=tm.keys.prefix).get_job(job_id, "default")
    assert job is not None
    short, cut, whole = (line.message for line in job.logs)
    assert short == "short line"
    assert cut.startswith("y" * MAX_LOG_CHARS + " [... log line cut: 163,840 characters")
    assert len(cut) < MAX_LOG_CHARS + 100
    assert whole == "z" * MAX_LOG_CHARS


# -- Django: the setting, its check, the emits, the Tasks backend, the gateway ----------


def test_the_setting_is_checked_with_the_fix() -> None:
    assert problems({"MAX_PAYLOAD_BYTES": 4096}, import_paths=False) == []
    assert problems({"MAX_PAYLOAD_BYTES": None}, import_paths=False) == []
    [low] = problems({"MAX_PAYLOAD_BYTES": 0}, import_paths=False)
    assert (low.id, low.msg) == ("remq.E008", "REMQ['MAX_PAYLOAD_BYTES'] must be >= 1, got 0.")
    assert "None turns the limit off" in (low.hint or "")
    [kind] = problems({"MAX_PAYLOAD_BYTES": "1MB"}, import_paths=False)
    assert kind.id == "remq.E003"
    assert "MAX_PAYLOAD_BYTES" in kind.msg
    assert "1048576" in (kind.hint or "")
    [flag] = problems({"MAX_PAYLOAD_BYTES": True}, import_paths=False)
    assert flag.id == "remq.E003"


@pytest.mark.filterwarnings("ignore::django_remq.errors.UnknownEventWarning")
def test_django_emits_use_the_setting(redis_url: str) -> None:
    with remq_test_settings(redis_url, MAX_PAYLOAD_BYTES=LIMIT) as env:
        tm = django_remq.get_task_manager()
        assert tm.max_payload_bytes == LIMIT
        big = "x" * (2 * LIMIT)
        with pytest.raises(PayloadTooLarge):
            django_remq.emit("upload", big)
        with pytest.raises(PayloadTooLarge):  # refused at the call, not at commit
            django_remq.emit("upload", big, on_commit=True)
        with pytest.raises(PayloadTooLarge):
            django_remq.emit_many([{"event": "upload", "data": big}])
        django_remq.emit("upload", "small")
        assert Sdk(tm.conn.sync, prefix=env.prefix).get_queue_stats("default").total == 1
    with remq_test_settings(redis_url, MAX_PAYLOAD_BYTES=None):
        assert django_remq.get_task_manager().max_payload_bytes is None
    with remq_test_settings(redis_url):
        assert django_remq.get_task_manager().max_payload_bytes == MAX_PAYLOAD_BYTES


@pytest.fixture
def env(redis_url: str) -> Any:
    with remq_test_settings(redis_url, MAX_PAYLOAD_BYTES=LIMIT) as test_env:
        yield test_env


def test_the_tasks_backend_refuses_large_arguments(env: RemqTestEnv) -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        takes.enqueue("x" * LIMIT)
    text = str(caught.value)
    assert text.startswith("tests.payload_tasks.takes.enqueue(): the call (its arguments, as "
                           "stored) is ")
    assert f"limit of {LIMIT:,} bytes" in text
    assert "REMQ['MAX_PAYLOAD_BYTES']" in text
    assert takes.enqueue("small").id


async def test_the_tasks_backend_refuses_them_on_aenqueue_too(env: RemqTestEnv) -> None:
    with pytest.raises(PayloadTooLarge, match=r"takes\.enqueue\(\): the call \(its arguments"):
        await takes.aenqueue("x" * LIMIT)
    assert (await takes.aenqueue("small")).id


def test_a_tasks_backend_result_over_the_limit_fails_the_task(env: RemqTestEnv) -> None:
    finished: list[Any] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        finished.append(task_result.status)

    task_finished.connect(receiver)
    try:
        result = big_result.enqueue(2 * LIMIT)
        env.run_until_idle(queues=["dtasks"])
    finally:
        task_finished.disconnect(receiver)
    read = task_backends["default"].get_result(result.id)
    assert read.status == TaskResultStatus.FAILED
    assert read.errors[-1].exception_class_path == "django_remq.core.errors.PayloadTooLarge"
    assert finished == [TaskResultStatus.FAILED]  # not SUCCESSFUL, then failed


async def test_the_gateway_answers_too_large(redis_url: str) -> None:
    with gateway_env(redis_url, max_message_bytes=10 * LIMIT), \
            override_settings(REMQ={**settings.REMQ, "MAX_PAYLOAD_BYTES": LIMIT}):
        comm = await connect(ADA)
        await comm.send_json_to({"event": "live.report", "data": "x" * (2 * LIMIT)})
        reply = await comm.receive_json_from(timeout=10)
        assert (reply["type"], reply["code"]) == ("error", "too_large")
        assert "2,002 bytes" in reply["message"]
        assert "REMQ['MAX_PAYLOAD_BYTES']" in reply["message"]
        await comm.send_json_to({"event": "live.report", "data": "small"})
        assert (await comm.receive_json_from(timeout=10))["type"] == "queued"
        await comm.disconnect()
