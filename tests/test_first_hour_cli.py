"""``manage.py remq show ID`` (and the other job actions) without ``--queue``: the job is
looked up in every queue of the registry, and an id found in several queues is named
with them instead of guessed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_remq.core import TaskManager
from django_remq.errors import InvalidOptions
from django_remq.sdk import Sdk

pytestmark = pytest.mark.redis


@pytest.fixture
def cli(redis_url: str, prefix: str) -> Iterator[Callable[..., str]]:
    with override_settings(REMQ={"REDIS_URL": redis_url, "PREFIX": prefix}):
        def run(*args: str) -> str:
            out = StringIO()
            call_command("remq", *args, stdout=out)
            return out.getvalue()

        yield run


def test_show_finds_the_job_in_its_queue(cli: Callable[..., str], make_tm: Any) -> None:
    tm: TaskManager = make_tm()
    tm.emit("warm-up")  # another queue in the registry
    job_id = tm.emit("generate-report", queue="reports", data={"month": 5})
    shown = json.loads(cli("show", job_id, "--json"))
    assert (shown["state"]["queue"], shown["state"]["data"]) == ("reports", {"month": 5})
    text = cli("show", job_id)
    assert "logs:" in text
    assert "generate-report" in text
    assert json.loads(cli("cancel", job_id, "--json")) == {"id": job_id, "queue": "reports",
                                                           "status": "cancelled"}
    assert json.loads(cli("show", job_id, "--queue", "reports", "--json"))["status"] == \
        "cancelled"


def test_an_id_in_several_queues_is_named_with_them(cli: Callable[..., str],
                                                   make_tm: Any) -> None:
    tm: TaskManager = make_tm()
    for queue in ("reports", "emails"):
        tm.emit("work", queue=queue, options={"id": "order-42"})
    with pytest.raises(CommandError, match=r"job order-42 exists in 2 queues \('emails', "
                                           r"'reports'\); pass --queue"):
        cli("show", "order-42")
    with pytest.raises(CommandError, match="exists in 2 queues"):
        cli("delete", "order-42")  # never a guess for a change either
    assert json.loads(cli("show", "order-42", "--queue", "emails", "--json"))["state"][
        "queue"] == "emails"


def test_a_missing_job_names_the_queues_looked_in(cli: Callable[..., str],
                                                 make_tm: Any) -> None:
    make_tm().emit("work", queue="reports")
    with pytest.raises(CommandError, match=r"no job nope-1 in any queue \(looked in: "
                                           r"'reports'"):
        cli("show", "nope-1")


async def test_sdk_find_job(make_tm: Any, redis_url: str, prefix: str) -> None:
    tm: TaskManager = make_tm()
    sdk = Sdk(redis_url, prefix=prefix)
    assert sdk.find_job("x") == []  # no queue at all yet
    job_id = tm.emit("work", queue="reports")
    tm.emit("work", queue="emails")
    [found] = sdk.find_job(job_id)
    assert (found.id, found.state.queue) == (job_id, "reports")
    assert [j.state.queue for j in await sdk.afind_job(job_id)] == ["reports"]
    with pytest.raises(InvalidOptions, match="non-empty string"):
        sdk.find_job("")
    sdk.conn.close()
