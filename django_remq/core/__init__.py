"""The django_remq engine: Redis Streams task processing with no Django imports.

A port of the original remq (github.com/mirairoad/remq, TypeScript/Deno): its names in
snake_case, its semantics made robust (at-least-once, bounded memory).

The tree is the architecture. Read in this order: ``store`` (keys, Lua scripts, records:
the data model and every state change), ``task_manager`` (the API), ``worker`` (reader,
consumer, processor, acker, housekeeping), ``policies`` (retry, DLQ, debounce, cron) and
``sdk`` (the admin side).
"""

from .errors import (
    CorruptRecord,
    DuplicateHandler,
    InvalidJobState,
    InvalidOptions,
    JobCancelled,
    JobNotFound,
    MalformedMessage,
    PoisonMessage,
    RedisTimeout,
    RedisUnavailable,
    RemqError,
    ReplicaTimeout,
    SyncThreadsExhausted,
    TaskTimeout,
    UnknownEvent,
    UnknownEventWarning,
)
from .policies.debounce import DebounceManager
from .settings import ProcessorSettings
from .store.keys import Keys
from .task_manager import HandlerEntry, TaskManager
from .worker.consumer_options import ConsumerOptions
from .worker.pool import ConcurrencyPool
from .worker.processor import Processor
from .worker.reader import StreamReader
from .worker.stream_consumer import Consumer
from .worker.task import HandlerContext, Task

__all__ = [
    "ConcurrencyPool", "Consumer", "ConsumerOptions", "CorruptRecord", "DebounceManager",
    "DuplicateHandler", "HandlerContext", "HandlerEntry", "InvalidJobState", "InvalidOptions",
    "JobCancelled", "JobNotFound", "Keys", "MalformedMessage", "PoisonMessage", "Processor",
    "ProcessorSettings", "RedisTimeout", "RedisUnavailable", "RemqError", "ReplicaTimeout",
    "StreamReader",
    "SyncThreadsExhausted", "Task", "TaskManager", "TaskTimeout", "UnknownEvent",
    "UnknownEventWarning",
]
