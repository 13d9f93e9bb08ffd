"""The django_remq engine: Redis Streams task processing with no Django imports.

The tree is the architecture. Read in this order: ``store`` (keys, Lua scripts, records:
the data model and every state change), ``task_manager`` (the API), ``worker`` (reader,
consumer, processor, acker, upkeep), ``policies`` (retry, DLQ, debounce, cron) and
``sdk`` (the admin side).
"""

from .errors import (
    DuplicateHandler,
    InvalidJobState,
    InvalidOptions,
    JobCancelled,
    JobNotFound,
    MalformedMessage,
    PoisonMessage,
    RemqError,
    SyncThreadsExhausted,
    TaskTimeout,
    UnknownEvent,
)
from .store.keys import Keys
from .task_manager import HandlerEntry, TaskManager
from .worker.consumer import Consumer, ConsumerOptions
from .worker.pool import ConcurrencyPool
from .worker.processor import Processor, ProcessorSettings
from .worker.reader import StreamReader
from .worker.task import HandlerContext, Task

__all__ = [
    "ConcurrencyPool", "Consumer", "ConsumerOptions", "DuplicateHandler", "HandlerContext",
    "HandlerEntry", "InvalidJobState", "InvalidOptions", "JobCancelled", "JobNotFound", "Keys",
    "MalformedMessage", "PoisonMessage", "Processor", "ProcessorSettings", "RemqError",
    "StreamReader", "SyncThreadsExhausted", "Task", "TaskManager", "TaskTimeout", "UnknownEvent",
]
