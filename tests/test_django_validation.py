"""The Django layer refuses what used to pass and then break: checks, emit, the CLI."""

from __future__ import annotations

import math
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_remq import Sdk, emit, emit_many
from django_remq.checks import check_settings
from django_remq.conf import get_settings
from django_remq.errors import InvalidOptions
from django_remq.testing import RemqTestEnv, remq  # noqa: F401

pytestmark = pytest.mark.redis


def checked(remq_setting: Any) -> list[tuple[str, str]]:
    with override_settings(REMQ=remq_setting):
        return [(m.id, f"{m.msg} {m.hint}") for m in check_settings()]


@pytest.mark.parametrize(("processor", "word"), [
    ({"retention": {"completed_max_age_ms": "1d"}}, "completed_max_age_ms"),
    ({"retention": {"failed_max_count": -1}}, "failed_max_count"),
    ({"max_deliveries": True}, "max_deliveries"),
    ({"claim_idle_ms": -5}, "claim_idle_ms"),
])
def test_check_refuses_processor_values_that_break_at_run_time(processor, word):
    [(check_id, text)] = checked({"PROCESSOR": processor})
    assert check_id == "remq.E006"
    assert word in text


@pytest.mark.parametrize("value", [0, -1, math.nan, 10_000])
def test_check_refuses_bad_socket_timeouts(value):
    [(check_id, text)] = checked({"SOCKET_TIMEOUT": value})
    assert check_id == "remq.E008"
    assert "SOCKET_TIMEOUT" in text
    assert checked({"SOCKET_CONNECT_TIMEOUT": "5"})[0][0] == "remq.E003"


def test_socket_timeouts_reach_the_clients_and_the_url_wins():
    with override_settings(REMQ={"REDIS_URL": "redis://127.0.0.1:6379/15",
                                 "SOCKET_TIMEOUT": 2.5}):
        kw = Sdk().conn.sync.connection_pool.connection_kwargs
        assert kw["socket_timeout"] == 2.5
        assert kw["socket_connect_timeout"] == 5.0  # the default
    with override_settings(REMQ={"REDIS_URL": "redis://127.0.0.1:6379/15?socket_timeout=1",
                                 "SOCKET_TIMEOUT": 2.5}):
        assert "socket_timeout=1" in get_settings().connection_url
        assert Sdk().conn.sync.connection_pool.connection_kwargs["socket_timeout"] == 1.0


def test_emit_refuses_bad_values_with_the_path(remq: RemqTestEnv) -> None:  # noqa: F811
    with pytest.raises(TypeError, match=r"data\['x'\]"):
        emit("alpha.echo", data={"x": math.inf}, queue="alpha")
    with pytest.raises(TypeError, match=r"data\[0\]"):
        emit("alpha.echo", data=["\ud83d"], queue="alpha")
    with pytest.raises(InvalidOptions, match="looks like seconds"):
        emit("alpha.echo", queue="alpha", options={"delay_until": 1_800_000_000})
    with pytest.raises(InvalidOptions, match="must be a dict with 'event'"):
        emit_many(["echo"])
    with pytest.raises(InvalidOptions, match="must be a dict with 'event'"):
        emit_many([{"event": "alpha.echo"}, "echo"], on_commit=True)
    assert Sdk().get_queue_stats("alpha").total == 0


def test_cli_turns_bad_ids_into_command_errors(remq: RemqTestEnv) -> None:  # noqa: F811
    for args in (("dlq", "delete", "bogus"), ("dlq", "requeue", "bogus")):
        with pytest.raises(CommandError, match="DLQ entry id"):
            call_command("remq", *args, stdout=StringIO())


def test_emit_of_an_undeclared_event_warns_with_the_declared_ones(remq: RemqTestEnv) -> None:  # noqa: F811
    from django_remq.errors import UnknownEventWarning

    with pytest.warns(UnknownEventWarning, match=r"known events: .*alpha\.echo"):
        emit("alpha.ecko", queue="alpha")
