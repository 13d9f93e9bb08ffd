"""Every public name the project promises imports, with the promised shape. Renaming one
breaks users' code, so it must show up here."""

from __future__ import annotations

import dataclasses
import importlib
import typing

import pytest

pytestmark = pytest.mark.unit

TOP_LEVEL = ["handler", "emit", "aemit", "emit_many", "aemit_many", "get_task_manager", "Sdk",
             "TaskManager", "Task", "HandlerContext", "__version__"]
ENGINE = ["TaskManager", "Consumer", "ConsumerOptions", "StreamReader", "ConcurrencyPool",
          "Processor", "DebounceManager", "Task", "HandlerContext"]
TYPES = ["AdminJobData", "ListJobsOptions", "TaskStats", "QueueInfo", "RetryConfig", "DLQConfig",
         "DebounceConfig", "Message", "MessageContext", "TaskManagerOptions", "TaskHandler",
         "EmitFunction", "UpdateFunction", "RegisterHandlerOptions", "ConsumerOptions",
         "MessageHandler", "ProcessorOptions", "ProcessableMessage", "JobStatus", "EmitOptions",
         "HandlerOptions", "DlqEntry", "WorkerInfo", "Task", "HandlerContext"]
TASK_MANAGER = ["init", "register_handler", "emit", "aemit", "emit_many", "aemit_many", "start",
                "stop", "run", "pause_queue", "resume_queue", "is_queue_paused", "apause_queue",
                "aresume_queue", "ais_queue_paused"]
SDK = ["get_job", "list_jobs", "delete_job", "retry_job", "cancel_job", "get_queue_stats",
       "get_queues", "get_queues_info", "pause_queue", "resume_queue", "is_queue_paused",
       "pause_job", "resume_job"]
ADMIN_JOB_FIELDS = ["id", "state", "status", "delay_until", "lock_until", "priority",
                    "retry_count", "retry_delay_ms", "retried_attempts", "repeat_count",
                    "repeat_delay_ms", "logs", "errors", "timestamp", "last_run", "paused",
                    "progress"]


@pytest.mark.parametrize(("module", "names"), [
    ("django_remq", TOP_LEVEL), ("django_remq.core", ENGINE), ("django_remq.types", TYPES)])
def test_every_promised_name_imports(module: str, names: list[str]) -> None:
    mod = importlib.import_module(module)
    missing = [n for n in names if getattr(mod, n, None) is None]
    assert missing == []
    assert set(names) - {"__version__"} <= set(mod.__all__)


def test_handler_types_are_the_ones_handlers_receive() -> None:
    from django_remq import HandlerContext, Task
    from django_remq.core.worker import task

    assert (Task, HandlerContext) == (task.Task, task.HandlerContext)


def test_every_method_has_its_async_twin() -> None:
    from django_remq import Sdk, TaskManager

    assert [m for m in TASK_MANAGER if not callable(getattr(TaskManager, m, None))] == []
    expected = SDK + [f"a{m}" for m in SDK]
    assert [m for m in expected if not callable(getattr(Sdk, m, None))] == []


def test_records_have_the_original_fields_and_to_dict() -> None:
    from django_remq.types import AdminJobData, QueueInfo, TaskStats

    fields = [f.name for f in dataclasses.fields(AdminJobData)]
    assert [f for f in ADMIN_JOB_FIELDS if f not in fields] == []
    state = typing.get_type_hints(AdminJobData)["state"]
    assert [f.name for f in dataclasses.fields(state)] == ["name", "queue", "data", "options"]
    for record in (AdminJobData, TaskStats, QueueInfo):
        assert callable(record.to_dict)


def test_status_values_are_the_original_strings() -> None:
    from django_remq.types import JobStatus

    assert list(JobStatus) == ["waiting", "delayed", "processing", "completed", "failed",
                               "cancelled", "paused"]
    assert [s for s in JobStatus if s.final] == ["completed", "failed", "cancelled"]


def test_queue_stats_count_every_status() -> None:
    from django_remq.types import JobStatus, TaskStats

    assert {f.name for f in dataclasses.fields(TaskStats)} == {"queue", "dlq", *JobStatus}
    stats = TaskStats("q", **{s: n for n, s in enumerate(JobStatus, 1)}, dlq=100)
    assert stats.total == sum(range(1, len(JobStatus) + 1))


def test_option_bags_are_typed_dicts() -> None:
    from django_remq import types

    for name in ("ListJobsOptions", "RetryConfig", "DLQConfig", "DebounceConfig", "EmitOptions",
                 "TaskManagerOptions"):
        assert typing.is_typeddict(getattr(types, name)), name
    assert set(typing.get_type_hints(types.RetryConfig)) >= {"max_retries", "retry_delay_ms",
                                                             "should_retry"}
    assert set(typing.get_type_hints(types.DLQConfig)) >= {"stream_key", "should_send_to_dlq"}



def test_every_engine_error_is_in_the_one_import_for_users() -> None:
    from django_remq import errors
    from django_remq.core import errors as core_errors

    engine = {n for n, v in vars(core_errors).items() if isinstance(v, type)
              and issubclass(v, Exception) and v.__module__ == core_errors.__name__}
    assert "JobCancelled" in engine
    assert engine - set(errors.__all__) == set()
