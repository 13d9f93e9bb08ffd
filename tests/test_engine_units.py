"""Pure parts of the engine (no Redis): options, policies, the key schema, the rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from django_remq.core import InvalidOptions
from django_remq.core.options import (
    new_job_id,
    run_at_ms,
    validate_emit_options,
    validate_handler_options,
)
from django_remq.core.policies.retry import RetryPolicy
from django_remq.core.settings import ProcessorSettings
from django_remq.core.store.keys import Keys, validate_queue_name

pytestmark = pytest.mark.unit

CORE = Path(__file__).resolve().parent.parent / "django_remq" / "core"


def test_every_key_pattern():
    """The stored data model; renaming a key is a migration, so it must show up here."""
    k = Keys("remq")
    q = k.queue("mail")
    assert [k.queues, k.workers, k.worker("w1"), q.dlq(), q.dlq("dead"), k.wake,
            k.sweep_lease] == [
        "remq:queues", "remq:workers", "remq:worker:w1", "remq:{mail}:dlq", "remq:{mail}:dead",
        "remq:wake", "remq:lease:sweep"]
    assert [q.stream, q.paused, q.job("j"), q.logs("j"), q.job_prefix, q.logs_prefix,
            q.status("failed"), q.delayed, q.cron, q.cron_runs, q.debounce("ev", "k1")] == [
        "remq:{mail}:stream", "remq:{mail}:paused", "remq:{mail}:job:j", "remq:{mail}:logs:j",
        "remq:{mail}:job:", "remq:{mail}:logs:", "remq:{mail}:status:failed",
        "remq:{mail}:status:delayed", "remq:{mail}:cron", "remq:{mail}:cron:runs",
        "remq:{mail}:debounce:ev:k1"]
    assert q.script_keys == ("remq:{mail}:stream", "remq:{mail}:paused", *(
        f"remq:{{mail}}:status:{s}" for s in ("waiting", "delayed", "processing", "completed",
                                              "failed", "cancelled", "paused")))
    assert [q.lane(0), q.lane(5), q.lane(-100), q.lanes] == [
        "remq:{mail}:stream", "remq:{mail}:stream:p5", "remq:{mail}:stream:p-100",
        "remq:{mail}:lanes"]
    assert q.lane_script_keys(7) == ("remq:{mail}:stream:p7", *q.script_keys[1:])
    assert [q.totals, q.trend(492_000)] == ["remq:{mail}:totals", "remq:{mail}:trend:492000"]
    public = {name for name in dir(q) if not name.startswith("_")} - {"base"}
    assert public == {"stream", "paused", "job", "logs", "job_prefix", "logs_prefix", "status",
                      "delayed", "cron", "cron_runs", "debounce", "script_keys", "dlq", "lane",
                      "lanes", "lane_script_keys", "totals", "trend"}, (
        "a new key: add it to this test and to the layout in keys.py's docstring")


@pytest.mark.parametrize("name", ["", "a b", "a:b", "{a}"])
def test_bad_queue_names(name):
    with pytest.raises(ValueError, match="queue name"):
        validate_queue_name(name)


def test_every_lua_script_documents_keys_and_argv():
    scripts = sorted((CORE / "store" / "lua").glob("*.lua"))
    assert len(scripts) > 10
    for path in scripts:
        head = path.read_text().split("\n", 12)
        assert head[0].startswith(f"-- {path.stem}:"), path.name
        if path.stem != "_lib":
            text = "\n".join(head)
            assert "KEYS" in text, path.name
            assert "ARGV" in text, path.name


@pytest.mark.parametrize(("options", "message"), [
    ({"attempts": 2, "retry_count": 2}, "use one"),
    ({"should_retry": lambda e, a: True}, "processor setting"),
    ({"debounce": 100}, "belongs to the handler"),
    ({"atempts": 3}, "Did you mean 'attempts'"),
    ({"retry_delay_ms": -1}, ">= 0"),
    ({"attempts": "3"}, "must be an int"),
    ({"id": "has space"}, "without whitespace"),
    ({"delay_ms": 1, "delay_until": 5}, "not both"),
])
def test_emit_option_mistakes_are_explained(options, message):
    with pytest.raises(InvalidOptions, match=message):
        validate_emit_options("ev", options)


def test_handler_options():
    assert validate_handler_options("ev", {"attempts": 3, "debounce": 10}) == {
        "attempts": 3, "debounce": 10}
    with pytest.raises(InvalidOptions, match="per emit"):
        validate_handler_options("ev", {"id": "x"})
    with pytest.raises(InvalidOptions, match="processor setting"):
        validate_handler_options("ev", {"max_retries": 3})


def test_new_job_ids_are_32_hex_characters_and_all_differ():
    import re

    ids = {new_job_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_run_at():
    from datetime import UTC, datetime, timedelta

    assert run_at_ms({}, now_ms=1000) == 0
    assert run_at_ms({"delay_ms": 50}, now_ms=1000) == 1050
    assert run_at_ms({"delay_until": timedelta(seconds=2)}, now_ms=1000) == 3000
    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert run_at_ms({"delay_until": when}) == int(when.timestamp() * 1000)
    with pytest.raises(InvalidOptions, match="delay_until"):
        run_at_ms({"delay_until": "tomorrow"})


def test_processor_settings_reject_unknown_keys():
    with pytest.raises(InvalidOptions, match="max_log_per_task"):
        ProcessorSettings.from_options({"max_log_per_task": 5})
    with pytest.raises(InvalidOptions, match="retention"):
        ProcessorSettings.from_options({"retention": {"completed_days": 1}})
    with pytest.raises(InvalidOptions, match="claim_idle_ms"):
        ProcessorSettings.from_options({"claim_idle_ms": 0})


def test_retry_combo_both_levels_must_allow():
    err = ValueError("x")
    assert RetryPolicy(max_retries=0).next_delay_ms(err, 3, 0, None) is None
    assert RetryPolicy(max_retries=5).next_delay_ms(err, 0, 0, None) is None
    assert RetryPolicy(max_retries=5, retry_delay_ms=200).next_delay_ms(err, 3, 0, None) == 200
    assert RetryPolicy(max_retries=5, retry_delay_ms=200).next_delay_ms(err, 3, 0, 50) == 50
    refuse = RetryPolicy(max_retries=5, should_retry=lambda e, attempt: attempt < 2)
    assert refuse.next_delay_ms(err, 3, 0, 0) == 0
    assert refuse.next_delay_ms(err, 3, 1, 0) is None


async def test_engine_runs_on_fakeredis_without_a_server():
    """The embedded demo uses fakeredis: its Lua quirks (XREADGROUP reply shape) hold."""
    import fakeredis

    from django_remq.core import TaskManager

    db = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    tm = TaskManager.init(db=db, prefix="fake")
    ran = []

    async def job(task, ctx):
        ran.append(task.data)

    tm.register_handler(event="job", handler=job, queue="alpha")
    tm.emit_many([{"event": "job", "data": i} for i in range(3)])
    await tm.run(burst=True)
    assert sorted(ran) == [0, 1, 2]
    assert db.zcard("fake:{alpha}:status:completed") == 3


def test_last_given_compares_stream_ids_as_numbers_per_queue_and_lane():
    from django_remq.core.store.calls import Delivery
    from django_remq.core.worker.reader import LastGiven

    given = LastGiven()
    assert given.after("q", [0, 5]) == ["-", "-"]
    given.note("q", [Delivery("999-3", "a", "run", {}), Delivery("1000-0", "b", "gone", {}),
                     Delivery("", "", "held", {}), Delivery("900-0", "c", "run", {}, 5)])
    given.note("q", [Delivery("999-9", "d", "run", {})])  # older than 1000-0: not the last
    given.note("other", [Delivery("5-0", "e", "run", {})])
    assert given.after("q", [0, 5]) == ["1000-0", "900-0"]
    assert given.after("other", [0]) == ["5-0"]
    given.forget()
    assert given.after("q", [0]) == ["-"]
