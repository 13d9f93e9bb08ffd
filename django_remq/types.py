"""The public types, under the original remq's names (github.com/mirairoad/remq).

Records the Sdk returns are frozen dataclasses with ``to_dict()``; option bags are
TypedDicts, so a type checker catches a misspelt key. Importing this module reads no
settings and touches no Redis.

The original's names that have no separate Python type: ``ProcessableMessage`` is
:class:`Message`; ``RegisterHandlerOptions`` is :class:`HandlerOptions`;
the original's ``ConsumerEvents`` have no counterpart: a worker reports through
``logging`` (the ``django_remq`` loggers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from .core.store.connection import RedisLike
from .core.types import (
    AdminJobData,
    CancelToken,
    DebounceConfig,
    DLQConfig,
    DlqEntry,
    EmitOptions,
    HandlerOptions,
    JobError,
    JobState,
    JobStatus,
    ListJobsOptions,
    LogEntry,
    Message,
    MessageContext,
    ProcessorOptions,
    QueueInfo,
    RepeatOptions,
    RetentionConfig,
    RetryConfig,
    TaskStats,
    WorkerInfo,
)
from .core.worker.consumer_options import ConsumerOptions
from .core.worker.stream_consumer import MessageHandler
from .core.worker.task import EventSink, HandlerContext, Task

ProcessableMessage = Message
RegisterHandlerOptions = HandlerOptions

#: A handler: ``def handler(task, ctx)`` or ``async def``; its return value is the result.
TaskHandler = Callable[[Task, HandlerContext], Any]
#: ``ctx.emit``: emits a follow-up task, returns its id.
EmitFunction = Callable[..., str]
#: ``ctx.socket.update(data, progress)``.
UpdateFunction = Callable[[Any, float | None], None]


class TaskManagerOptions(TypedDict, total=False):
    """Keyword arguments of ``TaskManager.init(**options)``."""

    db: RedisLike
    streamdb: RedisLike | None
    ctx: Mapping[str, Any] | None
    concurrency: int
    processor: ProcessorOptions | None
    expose: EventSink | None
    prefix: str
    wait_replicas: int
    wait_timeout_ms: int


__all__ = [
    "AdminJobData", "CancelToken", "ConsumerOptions", "DLQConfig", "DebounceConfig", "DlqEntry",
    "EmitFunction", "EmitOptions", "HandlerContext", "HandlerOptions", "JobError", "JobState",
    "JobStatus", "ListJobsOptions", "LogEntry", "Message", "MessageContext", "MessageHandler",
    "ProcessableMessage", "ProcessorOptions", "QueueInfo", "RegisterHandlerOptions",
    "RepeatOptions", "RetentionConfig", "RetryConfig", "Task", "TaskHandler",
    "TaskManagerOptions", "TaskStats", "UpdateFunction", "WorkerInfo",
]
