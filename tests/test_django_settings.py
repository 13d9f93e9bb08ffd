"""REMQ settings: lazy frozen config, override_settings, env override, system checks."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_remq.checks import check_handler_queues, check_settings
from django_remq.conf import DEFAULT_CONCURRENCY, DEFAULT_REDIS_URL, get_settings
from django_remq.conf import reset as reset_settings
from django_remq.errors import ImproperlyConfiguredRemq

pytestmark = pytest.mark.redis


def ids(remq: Any) -> list[str]:
    with override_settings(REMQ=remq):
        return [m.id for m in check_settings()]


def messages(remq: Any) -> str:
    with override_settings(REMQ=remq):
        return "\n".join(f"{m.msg} {m.hint}" for m in check_settings())


def ctx_factory() -> dict[str, Any]:
    return {"greeting": "hi"}


NOT_CALLABLE = 42


def test_defaults_and_override_settings_reset_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMQ_REDIS_URL", raising=False)
    reset_settings()
    with override_settings(REMQ={}):
        conf = get_settings()
        assert conf.redis_url == DEFAULT_REDIS_URL
        assert conf.prefix == "remq"
        assert conf.concurrency == DEFAULT_CONCURRENCY == 16
        assert conf.tasks_module == "tasks"
        assert conf.emit_on_commit is False
        assert get_settings() is conf  # cached
        with pytest.raises(dataclasses.FrozenInstanceError):
            conf.prefix = "x"  # type: ignore[misc]
    with override_settings(REMQ={"PREFIX": "other", "CONCURRENCY": 3, "QUEUES": ["a", "b"]}):
        conf = get_settings()
        assert (conf.prefix, conf.concurrency, conf.queues) == ("other", 3, ("a", "b"))


def test_environment_variable_overrides_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMQ_REDIS_URL", "redis://example.invalid:6390/4")
    reset_settings()
    try:
        with override_settings(REMQ={"REDIS_URL": "redis://127.0.0.1:6379/1"}):
            assert get_settings().redis_url == "redis://example.invalid:6390/4"
    finally:
        monkeypatch.delenv("REMQ_REDIS_URL")
        reset_settings()


def test_bad_settings_raise_improperly_configured_at_use() -> None:
    with override_settings(REMQ={"CONCURENCY": 2}), pytest.raises(ImproperlyConfiguredRemq) as err:
        get_settings()
    assert isinstance(err.value, ImproperlyConfigured)
    assert "CONCURRENCY" in str(err.value)
    assert "remq.E002" in str(err.value)


def test_a_good_config_has_no_findings() -> None:
    assert ids({"REDIS_URL": "rediss://:pw@redis.example.com:6380/2", "PREFIX": "app",
                "CONCURRENCY": 4, "QUEUES": ["default", "mail"],
                "CTX": "tests.test_django_settings.ctx_factory",
                "PROCESSOR": {"retry": {"max_retries": 3}, "max_logs_per_task": 50},
                "GATEWAY": {}, "EMIT_ON_COMMIT": True, "TASKS_MODULE": "jobs"}) == []


@pytest.mark.parametrize(("remq", "expected_id", "text"), [
    (["REDIS_URL"], "remq.E001", "must be a dict"),
    ({"REDIS_ULR": "redis://x"}, "remq.E002", "Did you mean 'REDIS_URL'"),
    ({"CONCURRENCY": "4"}, "remq.E003", "must be int"),
    ({"EMIT_ON_COMMIT": 1}, "remq.E003", "must be bool"),
    ({"QUEUES": "default"}, "remq.E003", "list or tuple"),
    ({"REDIS_URL": "http://127.0.0.1:6379"}, "remq.E004", "redis://"),
    ({"REDIS_URL": "redis://"}, "remq.E004", "no host"),
    ({"CTX": "tests.nowhere.build"}, "remq.E005", "does not import"),
    ({"CTX": "tests.test_django_settings.NOT_CALLABLE"}, "remq.E005", "not callable"),
    ({"PROCESSOR": {"max_logs_per_task": 0}}, "remq.E006", "max_logs_per_task"),
    ({"PROCESSOR": {"retry": {"max_retry": 3}}}, "remq.E006", "max_retry"),
    ({"PROCESSOR": {"debounce": 1000}}, "remq.E007", "@handler(..., debounce=...)"),
    ({"PROCESSOR": {"should_retry": print}}, "remq.E007", "PROCESSOR['retry']"),
    ({"PROCESSOR": {"retry": {"attempts": 3}}}, "remq.E007", "max_retries"),
    ({"CONCURRENCY": 0}, "remq.E008", ">= 1"),
    ({"PREFIX": "my prefix"}, "remq.E008", "PREFIX"),
    ({"QUEUES": ["ok", "bad{name}"]}, "remq.E008", "bad{name}"),
    ({"STREAM_REDIS_URL": "redis://127.0.0.1:6379/9"}, "remq.E009", "one Redis database"),
])
def test_every_check_fires_on_its_bad_input(remq: Any, expected_id: str, text: str) -> None:
    assert ids(remq) == [expected_id]
    assert text in messages(remq)


def test_bad_url_message_hides_the_password() -> None:
    text = messages({"REDIS_URL": "http://user:sekret@host:6379"})
    assert "sekret" not in text
    assert "host:6379" in text


def test_handler_in_a_queue_no_worker_serves_warns() -> None:
    with override_settings(REMQ={"QUEUES": ["default", "alpha"]}):
        found = check_handler_queues()
    assert {m.id for m in found} == {"remq.W001"}
    assert all("'beta'" in m.msg for m in found)  # alpha is served, beta is not
    assert any("tests.remq_apps.beta.tasks.greet" in m.msg for m in found)


def test_manage_py_check_reports_the_error() -> None:
    with override_settings(REMQ={"CONCURRENCY": -1}), pytest.raises(SystemCheckError) as err:
        call_command("check")
    assert "remq.E008" in str(err.value)


def test_cron_ticks_in_the_project_time_zone():
    from django_remq.api import build_task_manager

    with override_settings(TIME_ZONE="Europe/Paris"):
        assert build_task_manager().settings.timezone == "Europe/Paris"
    with override_settings(TIME_ZONE="Europe/Paris",
                           REMQ={"PROCESSOR": {"timezone": "Asia/Tokyo"}}):
        assert build_task_manager().settings.timezone == "Asia/Tokyo"
