"""Job records: how a job is written to its Redis hash and read back.

The hash holds only what is set; defaults are filled in on reading, which keeps a
finished job small (see ``bench/sdk.py`` for bytes per job). Reading is one script
call (:func:`read`, admin_read.lua) and one decoder (:func:`decode`), used by the
Sdk, the DLQ writer and the testing helpers alike. Decoding raises nothing but
:class:`~..errors.CorruptRecord`, naming the job and the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from .. import jsonutil
from ..errors import CorruptRecord
from ..options import retries_of
from ..types import AdminJobData, JobError, JobState, JobStatus, LogEntry
from . import scripts
from .keys import GROUP, QueueKeys
from .scripts import Arg, Call

T = TypeVar("T")
#: What admin_read.lua returns for a key that is not a hash (see _admin.lua's ``record``).
CORRUPT_MARK = "__corrupt__"
#: The field :func:`pairs_to_dict` adds to a record or stream entry holding bytes that are
#: not UTF-8 (``lua/_lib.lua``'s utf8_fields too): the names of the fields at fault, a
#: JSON array. Each such field is kept escaped, name and value (:func:`escaped`), so
#: nothing is lost.
NOT_UTF8 = "__not_utf8__"
_STATUSES = frozenset(JobStatus)
Raw = tuple[dict[str, str], list[str]]


def emit_fields(job_id: str, event: str, queue: str, data_json: str,
                options: Mapping[str, Any]) -> list[str]:
    """Field/value pairs of a new record (emit.lua adds status and timestamp)."""
    stored = {k: v for k, v in options.items() if k not in ("id", "delay_until", "delay_ms")}
    fields = ["id", job_id, "name", event, "queue", queue, "data", data_json]
    if options.get("priority"):  # the job's lane: scripts read it from the record
        fields += ["priority", str(options["priority"])]
    if stored:
        fields += ["options", jsonutil.dumps(stored)]
    return fields


def escaped(value: bytes) -> str:
    r"""Bytes that are not UTF-8 as ASCII text that keeps them: each byte above 0x7f as
    ``\xNN``, a backslash doubled (``codecs.escape_decode`` gives the bytes back)."""
    return value.replace(b"\\", b"\\\\").decode("ascii", "backslashreplace")


def as_text(value: bytes | str) -> str:
    """A reply's value as text; bytes that are not UTF-8, :func:`escaped`."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return escaped(value)
    return value


def _strict(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def pairs_to_dict(flat: list[Any]) -> dict[str, str]:
    """A flat field/value reply (HGETALL, a stream entry) as a dict of str. Replies that
    hold what anyone wrote are read undecoded (``Connection.raw_sync``) and decoded here,
    field by field: a name or value that is not UTF-8 is kept :func:`escaped` and named
    under :data:`NOT_UTF8`, so the record reads as corrupt and its neighbours as usual."""
    try:
        return {_strict(flat[i]): _strict(flat[i + 1]) for i in range(0, len(flat), 2)}
    except UnicodeDecodeError:
        pass
    out, bad = {}, []
    for i in range(0, len(flat) - 1, 2):
        name, value = flat[i], flat[i + 1]
        try:
            out[_strict(name)] = _strict(value)
        except UnicodeDecodeError:  # the pair escaped, name and value: no guess which
            key = _escaped(name)
            out[key] = _escaped(value)
            bad.append(key)
    out[NOT_UTF8] = jsonutil.dumps(bad)
    return out


def _escaped(value: bytes | str) -> str:
    return escaped(value if isinstance(value, bytes) else value.encode())


def read(qk: QueueKeys, job_ids: Sequence[str], with_logs: bool = False) -> Call[list[Raw]]:
    """Records (and logs) of ``job_ids``, in order, for :func:`decode`; a missing job has
    empty fields. The one way every part of the project reads a job."""
    def parse(reply: Any) -> list[Raw]:
        return [(pairs_to_dict(flat), [as_text(x) for x in logs]) for _, flat, logs in reply]

    args: list[Arg] = [qk.job_prefix, qk.logs_prefix, GROUP, "1" if with_logs else "0",
                       *job_ids]
    return Call(scripts.ADMIN_READ, qk.script_keys, args, parse)


class _Reader:
    """Field access that turns any problem into a CorruptRecord naming the field."""

    def __init__(self, fields: Mapping[str, str], where: str) -> None:
        self.fields, self.where = fields, where

    def fail(self, name: str, why: str) -> CorruptRecord:
        value = self.fields.get(name)
        shown = "" if value is None else f" = {value[:80]!r}"
        return CorruptRecord(f"{self.where} has a corrupt record: field {name!r}{shown}: {why}")

    def text(self, name: str) -> str:
        value = self.fields.get(name)
        if not value:
            raise self.fail(name, "missing")
        return value

    def int(self, name: str, default: int = 0) -> int:
        value = self.fields.get(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError:
            try:
                number = float(value)  # an int Lua wrote in float notation, e.g. "1e+15"
            except ValueError:
                raise self.fail(name, "not an integer") from None
            if number != number or number in (float("inf"), float("-inf")):
                raise self.fail(name, "not an integer") from None
            return int(number)

    def json(self, name: str, default: Any = None, kind: type | None = None) -> Any:
        value = self.fields.get(name)
        if not value:
            return default
        try:
            decoded = jsonutil.loads(value)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise self.fail(name, f"not JSON ({exc})") from None
        if kind is not None and not isinstance(decoded, kind):
            raise self.fail(name, f"must be a JSON {'object' if kind is dict else 'array'}")
        return decoded

    def each(self, name: str, items: list[Any], build: Callable[..., T]) -> list[T]:
        out = []
        for item in items:
            try:
                out.append(build(**item))
            except TypeError as exc:
                raise self.fail(name, f"entry {str(item)[:80]} does not fit ({exc})") from None
        return out


def not_utf8(fields: Mapping[str, str]) -> str | None:
    """What a script found not UTF-8 in ``fields`` (:data:`NOT_UTF8`), in words; ``None``
    when it found nothing."""
    marked = fields.get(NOT_UTF8)
    if marked is None:
        return None
    try:
        names = [str(n) for n in jsonutil.loads(marked)]
    except (ValueError, TypeError):  # a hand-written field of that name
        names = [marked]
    # the values are escaped already: shown as they are (a repr would double each "\")
    shown = ", ".join(f"{n!r} = '{str(fields.get(n, ''))[:80]}'" for n in names[:5])
    return (f"field{'s' if len(names) > 1 else ''} {shown} "
            f"{'are' if len(names) > 1 else 'is'} not UTF-8 (bytes above 0x7f shown as "
            r"\xNN)")


def decode(fields: Mapping[str, str], logs: Sequence[Any] | None = None,
           queue: str | None = None) -> AdminJobData:
    """Build an :class:`AdminJobData` from a record's fields; raises ``CorruptRecord``
    (only) when the record cannot be read, naming the job and the field."""
    where = f"job {fields.get('id', '?')}" + (f" in queue {queue!r}" if queue else "")
    if CORRUPT_MARK in fields:
        raise CorruptRecord(f"{where} has a corrupt record: the key holds a "
                            f"{fields[CORRUPT_MARK]}, not a hash")
    bad_bytes = not_utf8(fields)
    if bad_bytes is not None:
        raise CorruptRecord(f"{where} has a corrupt record: {bad_bytes}")
    try:
        return _decode(_Reader(fields, where), logs)
    except CorruptRecord:
        raise
    except Exception as exc:  # whatever else a damaged record can do
        raise CorruptRecord(f"{where} has a corrupt record: {type(exc).__name__}: "
                            f"{exc}") from None


def _decode(f: _Reader, logs: Sequence[Any] | None) -> AdminJobData:
    options = f.json("options", {}, dict)
    lines = []
    for n, line in enumerate(logs or ()):
        try:
            entry = jsonutil.loads(as_text(line))
            lines.append(LogEntry(**entry))
        except (ValueError, TypeError, RecursionError) as exc:
            raise CorruptRecord(f"{f.where} has a corrupt log line {n}: {exc}") from None
    try:
        retries = retries_of(options)
    except (ValueError, TypeError, OverflowError):
        raise f.fail("options", "'retry_count' (or 'attempts') must be a whole number "
                     f"of retries, got {options.get('retry_count', options.get('attempts'))!r}"
                     ) from None
    status = f.fields.get("status") or "waiting"
    if status not in _STATUSES:
        raise f.fail("status", f"not a job status (one of {', '.join(JobStatus)})")
    return AdminJobData(
        id=f.text("id"),
        state=JobState(name=f.text("name"), queue=f.text("queue"),
                       data=f.json("data"), options=options),
        status=JobStatus(status),
        timestamp=f.int("timestamp"),
        delay_until=f.int("delay_until") or None,
        lock_until=f.int("lock_until") or None,
        priority=f.int("priority", _number(f, options, "priority")),
        retry_count=f.int("retry_count", retries),
        retry_delay_ms=f.int("retry_delay_ms", _number(f, options, "retry_delay_ms")),
        retried_attempts=f.int("retried_attempts"),
        repeat_count=f.int("repeat_count"),
        repeat_delay_ms=f.int("repeat_delay_ms"),
        logs=lines,
        errors=f.each("errors", f.json("errors", [], list), JobError),
        last_run=f.int("last_run") or None,
        paused=status == "paused",
        progress=f.json("progress"),
        result=f.json("result"),
        finished_at=f.int("finished_at") or None,
        next_run=f.int("next_run") or None,
        deliveries=f.int("deliveries"),
        worker=f.fields.get("worker") or None,
        cancel_requested=bool(f.fields.get("cancel_requested")),
    )


def _number(f: _Reader, options: Mapping[str, Any], key: str) -> int:
    value = options.get(key, 0)
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not math.isfinite(value)):
        raise f.fail("options", f"{key!r} must be a number, got {value!r}")
    return int(value)
