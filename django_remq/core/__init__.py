"""The django_remq engine: Redis Streams task processing with no Django imports.

Read in this order: ``keys`` (the data model), ``lua/`` + ``commands`` (every state
change), ``task_manager`` (the API), ``processor`` and ``consumer`` (the worker).
"""

from .consumer import Consumer, ConsumerOptions
from .errors import (
    DuplicateHandler,
    InvalidJobState,
    InvalidOptions,
    JobCancelled,
    JobNotFound,
    MalformedMessage,
    PoisonMessage,
    RemqError,
    TaskTimeout,
    UnknownEvent,
)
from .keys import Keys
from .pool import ConcurrencyPool
from .processor import Processor, ProcessorSettings
from .reader import StreamReader
from .task import HandlerContext, Task
from .task_manager import HandlerEntry, TaskManager

__all__ = [
    "ConcurrencyPool", "Consumer", "ConsumerOptions", "DuplicateHandler", "HandlerContext",
    "HandlerEntry", "InvalidJobState", "InvalidOptions", "JobCancelled", "JobNotFound", "Keys",
    "MalformedMessage", "PoisonMessage", "Processor", "ProcessorSettings", "RemqError",
    "StreamReader", "Task", "TaskManager", "TaskTimeout", "UnknownEvent",
]
