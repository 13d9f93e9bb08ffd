"""The engine's errors: one flat hierarchy under :class:`RemqError`.

Configuration errors of the Django layer subclass Django's ``ImproperlyConfigured``
there (the engine itself imports no Django).
"""

from __future__ import annotations


class RemqError(Exception):
    """Base of every error raised by django_remq."""


class InvalidOptions(RemqError, ValueError):
    """An option passed to emit, a handler or the processor is wrong; the message says how."""


class DuplicateHandler(RemqError):
    """Two handlers were registered for the same event in the same queue."""


class UnknownEvent(RemqError):
    """A job names an event no handler is registered for (on this worker)."""


class JobNotFound(RemqError, LookupError):
    """No job with this id in this queue."""


class InvalidJobState(RemqError):
    """The job exists but its status does not allow the operation."""


class MalformedMessage(RemqError):
    """A stream entry or job record that cannot be decoded."""


class PoisonMessage(RemqError):
    """A job was delivered too many times without finishing (it keeps killing workers?)."""


class JobCancelled(RemqError):
    """A running job was asked to stop (``Sdk.cancel_job``); recorded on the job."""


class TaskTimeout(RemqError, TimeoutError):
    """A handler ran past its ``timeout_ms``."""


class SyncThreadsExhausted(RemqError):
    """More sync handlers are stuck past their timeouts than a worker keeps threads for
    (Python cannot kill a thread); the worker stopped and should be started afresh."""
