"""The engine's errors: one flat hierarchy under :class:`RemqError`.

Configuration errors of the Django layer subclass Django's ``ImproperlyConfigured``
there (the engine itself imports no Django).
"""

from __future__ import annotations

import redis.exceptions


class RemqError(Exception):
    """Base of every error raised by django_remq."""


class InvalidOptions(RemqError, ValueError):
    """An option passed to emit, a handler or the processor is wrong; the message says how."""


class QueueMismatch(InvalidOptions):
    """An emit names a queue where this process has no handler for the event, while it has
    one in another queue: no worker of the project would run the job, so it would wait
    forever. The message names the queue(s) the handler was registered in."""


class PayloadTooLarge(InvalidOptions):
    """A task's data (or a handler's result) is larger, as JSON, than the payload limit
    (``max_payload_bytes``; ``REMQ["MAX_PAYLOAD_BYTES"]`` under Django): a queue is no
    place for bulk data, and the admin and every worker would load it whole. ``size`` and
    ``limit`` are in bytes; ``code`` names the error for a client (a stable error code)."""

    code = "too_large"

    def __init__(self, message: str, size: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.size, self.limit = size, limit


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


class CorruptRecord(MalformedMessage):
    """A job record the engine cannot use or decode (a field of the wrong type, a key that
    holds no hash). The job fails with it instead of blocking delivery, and it is the only
    error decoding a record ever raises (the message names the job and the field)."""


class PoisonMessage(RemqError):
    """A job was delivered too many times without finishing (it keeps killing workers?)."""


class JobCancelled(RemqError):
    """A running job was asked to stop (``Sdk.cancel_job``); recorded on the job."""


class TaskTimeout(RemqError, TimeoutError):
    """A handler ran past its ``timeout_ms``."""


class ReplicaTimeout(RemqError, TimeoutError):
    """Fewer replicas than ``WAIT_REPLICAS`` confirmed an emit in time. The job is written
    on the master all the same (it runs unless that master fails first): the message
    names the jobs; ``confirmed`` is how many replicas did."""

    def __init__(self, message: str, confirmed: int = 0) -> None:
        super().__init__(message)
        self.confirmed = confirmed


class RedisUnavailable(RemqError, redis.exceptions.ConnectionError):
    """Redis could not be reached (refused, reset, unknown host): by an emit, or by the
    worker's start-up probe (``django_remq.worker.probe_redis``, which names the URL).
    Still a redis-py ``ConnectionError``, so handlers written for redis-py keep working."""


class RedisTimeout(RedisUnavailable, redis.exceptions.TimeoutError):
    """Redis did not answer an emit within the socket timeout (frozen, overloaded, or
    the network). The job may or may not be written: emit again with the same
    ``options["id"]`` to be sure (a live job is never enqueued twice)."""


class UnknownEventWarning(RuntimeWarning):
    """``emit`` of an event no handler is registered for in this process (while some are):
    likely a typo, and the job would fail ``UnknownEvent`` on the worker. Warned once per
    event; silence it with ``warnings.filterwarnings("ignore", category=...)`` when another
    service handles the event."""


class SyncThreadsExhausted(RemqError):
    """More sync handlers are stuck past their timeouts than a worker keeps threads for
    (Python cannot kill a thread); the worker stopped and should be started afresh."""
