"""Errors of the Django layer, next to the engine's (one import for users).

Configuration errors subclass Django's ``ImproperlyConfigured`` so they read and
behave like every other settings error in a Django project.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from .core.errors import (
    CorruptRecord,
    DuplicateHandler,
    InvalidJobState,
    InvalidOptions,
    JobCancelled,
    JobNotFound,
    MalformedMessage,
    PayloadTooLarge,
    PoisonMessage,
    QueueMismatch,
    RedisTimeout,
    RedisUnavailable,
    RemqError,
    ReplicaTimeout,
    SyncThreadsExhausted,
    TaskTimeout,
    UnknownEvent,
    UnknownEventWarning,
)


class ImproperlyConfiguredRemq(ImproperlyConfigured, RemqError):
    """``settings.REMQ`` (or a handler declaration) is wrong; the message names the fix."""


class DuplicateHandlerDeclared(ImproperlyConfiguredRemq, DuplicateHandler):
    """Two ``@handler`` functions claim the same event in the same queue."""


class InvalidHandlerOptions(ImproperlyConfiguredRemq, InvalidOptions):
    """A ``@handler`` declaration has an unknown option or one at the wrong level."""


__all__ = [
    "CorruptRecord", "DuplicateHandler", "DuplicateHandlerDeclared", "ImproperlyConfiguredRemq",
    "InvalidHandlerOptions",
    "InvalidJobState", "InvalidOptions", "JobCancelled", "JobNotFound", "MalformedMessage",
    "PayloadTooLarge", "PoisonMessage", "QueueMismatch", "RedisTimeout", "RedisUnavailable",
    "RemqError",
    "ReplicaTimeout", "SyncThreadsExhausted", "TaskTimeout",
    "UnknownEvent",
    "UnknownEventWarning",
]
