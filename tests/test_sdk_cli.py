"""``manage.py remq``: tables, --json output, and CommandError on bad input."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_remq.core import TaskManager
from django_remq.sdk import Sdk

from .sdk_seed import dead_letter, seed_finished

pytestmark = pytest.mark.redis


@pytest.fixture
def remq(redis_url, prefix):
    with override_settings(REMQ={"REDIS_URL": redis_url, "PREFIX": prefix}):
        def run(*args: str) -> str:
            out = StringIO()
            call_command("remq", *args, stdout=out)
            return out.getvalue()

        yield run


def as_json(text: str):
    return json.loads(text)


def test_sdk_without_arguments_reads_the_settings(remq, redis_url, prefix):
    sdk = Sdk()
    assert sdk.keys.prefix == prefix
    assert sdk.dlq_key == "dlq"  # each queue's stream: <prefix>:{<queue>}:dlq


def test_queues_and_jobs(remq, make_tm, r, prefix):
    tm: TaskManager = make_tm()
    job_id = tm.emit("hello", data=1)
    seed_finished(r, prefix, "other", 3, "failed")
    text = remq("queues")
    assert "QUEUE" in text
    assert "default" in text
    assert "DLQ: 0 entries" in text
    queues = {q["name"]: q for q in as_json(remq("queues", "--json"))}
    assert queues["default"]["stats"]["waiting"] == 1
    assert queues["other"]["stats"]["failed"] == 3
    jobs = as_json(remq("jobs", "--queue", "other", "--status", "failed", "--limit", "2",
                        "--json"))
    assert [j["id"] for j in jobs] == ["failed-0000002", "failed-0000001"]
    assert job_id in remq("jobs")
    assert remq("jobs", "--search", "nothing-like-this").strip() == "no jobs"


def test_job_actions(remq, make_tm):
    tm: TaskManager = make_tm()
    job_id = tm.emit("hello", data={"x": 1})
    shown = as_json(remq("show", job_id, "--json"))
    assert shown["state"]["data"] == {"x": 1}
    assert shown["status"] == "waiting"
    assert "logs:" in remq("show", job_id)
    assert as_json(remq("pause", job_id, "--json"))["status"] == "paused"
    assert as_json(remq("resume", job_id, "--queue", "default", "--json"))["status"] == "waiting"
    assert as_json(remq("cancel", job_id, "--json"))["status"] == "cancelled"
    assert as_json(remq("retry", job_id, "--json"))["status"] == "waiting"
    assert "-> deleted" in remq("delete", job_id)


def test_queue_actions_workers_and_dlq(remq, r, prefix, make_tm):
    assert as_json(remq("pause-queue", "default", "--json")) == {"queue": "default",
                                                                  "paused": True}
    assert make_tm().is_queue_paused("default")
    assert "resumed" in remq("resume-queue", "default")
    assert remq("workers").strip() == "no live workers"
    assert as_json(remq("workers", "--json")) == []
    entry = dead_letter(r, prefix, {"id": "j1", "queue": "default", "name": "work",
                                    "reason": "exhausted", "error": "boom", "attempts": "2",
                                    "job": json.dumps({"name": "work", "data": "1"})})
    [listed] = as_json(remq("dlq", "--json"))
    assert listed["entry_id"] == entry
    assert listed["error"] == "boom"
    assert as_json(remq("dlq", "requeue", entry, "--json"))["status"] == "waiting"
    assert remq("dlq").strip() == "DLQ is empty"


def test_bulk_commands(remq, r, prefix):
    seed_finished(r, prefix, "default", 30, "failed")
    seed_finished(r, prefix, "default", 20, "completed")
    assert as_json(remq("retry-failed", "--queue", "default", "--json"))["retried"] == 30
    assert "deleted 20" in remq("delete-completed", "default", "--older-than", "60")


@pytest.mark.parametrize(("args", "message"), [
    (("show", "missing"), "no job missing in any queue"),
    (("retry", "missing", "--queue", "q1"), "no job missing in queue 'q1'"),
    (("show",), "takes one job id, got 0"),
    (("pause-queue", "a", "b"), "takes one queue, got 2"),
    (("jobs", "--status", "done"), "unknown status 'done'"),
    (("jobs", "--queue", "bad:name"), "queue name"),
    (("dlq", "requeue"), "usage: remq dlq"),
    (("dlq", "requeue", "default:123-0"), "no DLQ entry default:123-0"),
    (("dlq", "delete", "123-0"), "DLQ entry id must be '<queue>:<stream id>'"),
    (("delete-completed", "default"), "needs --older-than"),
])
def test_bad_input_is_a_clear_command_error(remq, args, message):
    with pytest.raises(CommandError, match=message):
        remq(*args)


def test_invalid_state_is_a_command_error(remq, make_tm):
    job_id = make_tm().emit("hello")
    with pytest.raises(CommandError, match=rf"cannot retry job {job_id} in queue 'default': it "
                                           r"is waiting"):
        remq("retry", job_id)
