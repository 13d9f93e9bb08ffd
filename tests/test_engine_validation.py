"""Options and settings that used to pass and then break things: refused at once, named."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import pytest

from django_remq.core import TaskManager
from django_remq.core.errors import InvalidOptions
from django_remq.core.sdk import Sdk
from django_remq.core.worker.processor import ProcessorSettings

pytestmark = pytest.mark.redis


@pytest.fixture
def tm(make_tm) -> TaskManager:
    manager: TaskManager = make_tm()
    manager.register_handler("echo", lambda task, ctx: task.data)
    return manager


@pytest.mark.parametrize(("retention", "word"), [
    ({"completed_max_age_ms": "1d"}, "completed_max_age_ms"),
    ({"failed_max_count": -5}, "failed_max_count"),
    ({"completed_max_count": 1.5}, "completed_max_count"),
    ({"completed_max_age_ms": True}, "completed_max_age_ms"),
    ({"failed_max_age_ms": 10**20}, "failed_max_age_ms"),
])
def test_bad_retention_is_refused(retention, word):
    with pytest.raises(InvalidOptions, match=word):
        ProcessorSettings.from_options({"retention": retention})


def test_retention_none_keeps_and_ints_pass():
    s = ProcessorSettings.from_options({"retention": {"completed_max_age_ms": None,
                                                      "completed_max_count": 0}})
    assert s.retention.completed_max_age_ms is None
    assert s.retention.completed_max_count == 0


def test_processor_counts_refuse_bools_and_negatives():
    for key in ("max_logs_per_task", "claim_idle_ms", "max_deliveries"):
        for bad in (True, -1, 0, "5"):
            with pytest.raises(InvalidOptions, match=key):
                ProcessorSettings.from_options({key: bad})


@pytest.mark.parametrize(("options", "words"), [
    ({"delay_ms": 10**20}, "delay_ms"),
    ({"delay_ms": -1}, "delay_ms"),
    ({"retry_delay_ms": 10**20}, "retry_delay_ms"),
    ({"attempts": 10**9}, "attempts"),
    ({"priority": 2**40}, "priority"),
    ({"timeout_ms": 0}, "None"),
    ({"timeout_ms": -5}, "timeout_ms"),
    ({"delay_until": time.time()}, "looks like seconds since the epoch"),
    ({"delay_until": int(time.time())}, "pass a datetime or milliseconds"),
    ({"delay_until": float("nan")}, "delay_until"),
    ({"delay_until": float("inf")}, "delay_until"),
    ({"delay_until": True}, "delay_until"),
    ({"delay_until": "tomorrow"}, "delay_until"),
    ({"delay_until": 10**20}, "delay_until"),
    ({"delay_until": timedelta(days=-1)}, "delay_until"),
])
def test_bad_emit_options_are_refused_at_emit(tm, r, prefix, options, words):
    with pytest.raises(InvalidOptions, match=words):
        tm.emit("echo", data=1, options=options)
    assert Sdk(r, prefix=prefix).get_queue_stats("default").total == 0  # nothing written


def test_good_delays_still_work(tm, r, prefix):
    sdk = Sdk(r, prefix=prefix)
    now_ms = int(time.time() * 1000)
    a = tm.emit("echo", options={"delay_until": now_ms + 60_000})
    b = tm.emit("echo", options={"delay_until": datetime.now(UTC) + timedelta(minutes=1)})
    c = tm.emit("echo", options={"delay_until": timedelta(minutes=1)})
    d = tm.emit("echo", options={"delay_ms": 60_000, "timeout_ms": 1})
    for job_id in (a, b, c, d):
        job = sdk.get_job(job_id, "default")
        assert job.status == "delayed"
        assert now_ms + 50_000 < job.delay_until < now_ms + 70_000


def test_handler_timeout_zero_is_refused(make_tm):
    tm: TaskManager = make_tm()
    with pytest.raises(InvalidOptions, match="timeout_ms"):
        tm.register_handler("x", lambda t, c: None, options={"timeout_ms": 0})
    with pytest.raises(InvalidOptions, match="window_ms"):
        tm.register_handler("y", lambda t, c: None, options={"debounce": 10**20})


@pytest.mark.parametrize(("data", "path"), [
    ({"a": [1, "ok\ud800"]}, "data['a'][1]"),
    ({"x": math.nan}, "data['x']"),
    ([1, math.inf], "data[1]"),
    ({"\udc80": 1}, "data key"),
])
def test_unencodable_data_raises_type_error_naming_the_path(tm, data, path):
    with pytest.raises(TypeError) as err:
        tm.emit("echo", data=data)
    assert path in str(err.value)


@pytest.mark.parametrize("item", ["echo", ["echo"], None, 3])
def test_emit_many_names_what_an_item_must_be(tm, item):
    with pytest.raises(InvalidOptions, match="must be a dict with 'event'"):
        tm.emit_many([{"event": "echo"}, item])


def test_sdk_refuses_bad_ids_clearly(r, prefix):
    sdk = Sdk(r, prefix=prefix)
    with pytest.raises(InvalidOptions, match="DLQ entry id"):
        sdk.delete_dlq("abc")
    for bad in (None, "", 42):
        with pytest.raises(InvalidOptions, match="job id"):
            sdk.get_job(bad, "default")  # type: ignore[arg-type]
        with pytest.raises(InvalidOptions, match="job id"):
            sdk.cancel_job(bad, "default")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptions, match="<queue>:<stream id>"):
        sdk.delete_dlq("1-0")  # a stream id alone: the queue is part of the id
    assert sdk.delete_dlq("default:1-0") is False  # well-formed but absent: just False


def test_emit_of_an_unknown_event_warns_once_with_the_known_events(make_tm):
    import warnings

    from django_remq.core.errors import UnknownEventWarning

    tm: TaskManager = make_tm()
    tm.register_handler("send-email", lambda t, c: None)
    tm.register_handler("resize", lambda t, c: None, queue="images")
    with pytest.warns(UnknownEventWarning, match="known events: resize, send-email") as seen:
        tm.emit("send-emial")
    assert seen[0].filename == __file__  # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tm.emit("send-emial")  # once per event
        tm.emit("send-email")  # known: silent
    with pytest.warns(UnknownEventWarning, match="'other'"):
        tm.emit_many([{"event": "other"}])


def test_no_warning_when_this_process_knows_no_handlers(make_tm):
    import warnings

    tm: TaskManager = make_tm()  # a pure producer: handlers live elsewhere
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tm.emit("anything")
