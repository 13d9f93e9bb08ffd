"""Properties of the decoders, for any input (Hypothesis): a job record's fields, what a
worker runs a job with, a stream entry's fields. Each ends in a value or in the one error
of its kind (CorruptRecord, MalformedMessage) naming what is wrong -- never another
exception, which would cost the rest of a batch or a page."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_remq.core.errors import CorruptRecord, MalformedMessage
from django_remq.core.policies import failures
from django_remq.core.store.calls import RUN_FIELDS, Delivery
from django_remq.core.store.records import NOT_UTF8, decode
from django_remq.core.types import AdminJobData, JobStatus, Message
from django_remq.core.worker.stream_consumer import to_message

pytestmark = pytest.mark.unit

RECORD_FIELDS = ("id", "name", "queue", "data", "options", "status", "timestamp",
                 "delay_until", "lock_until", "priority", "retry_count", "retry_delay_ms",
                 "retried_attempts", "repeat_count", "repeat_delay_ms", "errors",
                 "last_run", "progress", "result", "finished_at", "next_run", "deliveries",
                 "worker", "cancel_requested", "entry", "watch")
#: JSON, numbers, near-misses of both and of the statuses, and any text
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8)
VALUES = st.one_of(
    st.text(max_size=30),
    st.integers().map(str),
    st.floats().map(repr),
    st.sampled_from([*JobStatus, "weird", "", "1e400", "-1", "[" * 3000, "9" * 5000]),
    JSONISH.map(lambda v: json.dumps(v)),
    st.builds(lambda k, v: '{"%s": %s}' % (k, v),  # noqa: UP031 - options with odd values
              st.sampled_from(["priority", "retry_count", "attempts", "retry_delay_ms"]),
              st.sampled_from(["Infinity", "NaN", '"x"', "[1]", "1e400", "true", "2"])),
)
#: a valid record with fields replaced or added (so the damage is past the first checks),
#: or any fields at all
BASE = {"id": "j1", "name": "ev", "queue": "q", "data": "null", "status": "waiting"}
ANY_FIELDS = st.dictionaries(st.sampled_from(RECORD_FIELDS) | st.text(max_size=6), VALUES,
                             max_size=12)
RECORDS = st.builds(lambda extra: {**BASE, **extra}, ANY_FIELDS) | ANY_FIELDS
NAMED = re.compile(r"fields? ['\"]|log line \d+|not a hash")


def _names_a_field(exc: Exception) -> bool:
    return bool(NAMED.search(str(exc)))


def outcome(fn: Any, *args: Any, errors: Any = CorruptRecord) -> Any:
    """``fn(*args)``, or the error of ``errors`` it raised (any other propagates)."""
    try:
        return fn(*args)
    except errors as exc:
        return exc


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(fields=RECORDS, logs=st.lists(st.text(max_size=20) | JSONISH.map(str), max_size=3))
def test_a_record_decodes_or_is_corrupt_naming_the_field(fields: dict[str, str],
                                                         logs: list[str]) -> None:
    job = outcome(decode, fields, logs, "q")
    if isinstance(job, CorruptRecord):
        assert _names_a_field(job), str(job)
        assert str(job).startswith(f"job {fields.get('id', '?')} in queue 'q'")
    else:
        assert isinstance(job, AdminJobData)
        assert job.status in tuple(JobStatus)


@given(fields=ANY_FIELDS, bad=st.lists(st.sampled_from(RECORD_FIELDS), min_size=1, max_size=3))
def test_fields_a_script_found_not_utf8_are_named(fields: dict[str, str],
                                                  bad: list[str]) -> None:
    marked = {**fields, NOT_UTF8: json.dumps(bad)}
    with pytest.raises(CorruptRecord, match="not UTF-8") as caught:
        decode(marked, None, "q")
    assert f"'{bad[0]}'" in str(caught.value)


RUN = st.dictionaries(st.sampled_from(RUN_FIELDS), VALUES, max_size=len(RUN_FIELDS))


@settings(max_examples=400)
@given(fields=RUN)
def test_a_worker_runs_a_record_or_fails_it_as_corrupt_naming_the_field(
        fields: dict[str, str]) -> None:
    fields = {k: v for k, v in fields.items() if v}  # deliver's reply holds no empty value
    d = Delivery("1-0", "j1", "run", fields)
    msg = outcome(to_message, "q", d, errors=failures.UNREADABLE)  # what the consumer catches
    if isinstance(msg, Message):
        assert msg.name == fields["name"]
    else:
        error = failures.unreadable("q", "j1", fields, msg)
        assert isinstance(error, CorruptRecord)
        assert _names_a_field(error), str(error)


@given(field=st.sampled_from(["status", "deliveries", *RUN_FIELDS]), value=st.text())
def test_a_corrupt_verdict_names_its_field(field: str, value: str) -> None:
    error = failures.corrupt_verdict("q", "j1", field, value)
    assert isinstance(error, CorruptRecord)
    assert str(error).startswith(f"job j1 in queue 'q' has a corrupt record: {field}=")


ENTRY = st.dictionaries(st.text(max_size=8) | st.sampled_from(["id", "name", NOT_UTF8]),
                        st.text(max_size=20), max_size=5)


@given(raw=ENTRY, bad=st.none() | st.lists(st.text(max_size=5), min_size=1, max_size=2))
def test_a_malformed_entry_is_recorded_whatever_its_fields(raw: dict[str, str],
                                                           bad: list[str] | None) -> None:
    if bad is not None:  # as deliver.lua marks an entry with bytes that are not UTF-8
        raw = {**raw, NOT_UTF8: json.dumps(bad)}
    error = failures.malformed_error("q", "5-0", raw)
    assert isinstance(error, MalformedMessage)
    assert str(error).startswith("stream entry 5-0 in queue 'q'")
    if NOT_UTF8 in raw:
        assert "not UTF-8" in str(error)
    else:
        assert "no 'id' field" in str(error)
    recorded = failures.malformed("q", "5-0", raw)
    assert recorded.job_id == "malformed-5-0"
    assert recorded.kind == "malformed"
    data: Any = json.loads(recorded.fields["data"])
    assert data == raw  # nothing lost
    assert recorded.dead is not None
    assert recorded.dead["reason"] == "malformed"
