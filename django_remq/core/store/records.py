"""Job records: how a job is written to its Redis hash and read back.

The hash holds only what is set; defaults are filled in on reading, which keeps a
finished job small (see ``bench/sdk.py`` for bytes per job).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import jsonutil
from ..options import retries_of
from ..types import AdminJobData, JobError, JobState, JobStatus, LogEntry

Fields = Mapping[bytes | str, bytes | str]


def emit_fields(job_id: str, event: str, queue: str, data_json: str,
                options: Mapping[str, Any]) -> list[str]:
    """Field/value pairs of a new record (emit.lua adds status and timestamp)."""
    stored = {k: v for k, v in options.items() if k not in ("id", "delay_until", "delay_ms")}
    fields = ["id", job_id, "name", event, "queue", queue, "data", data_json]
    if stored:
        fields += ["options", jsonutil.dumps(stored)]
    return fields


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def pairs_to_dict(flat: list[Any]) -> dict[str, str]:
    """An HGETALL reply from Lua (a flat list) as a dict of str."""
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}


def _int(fields: Mapping[str, str], key: str, default: int = 0) -> int:
    value = fields.get(key)
    return int(value) if value not in (None, "") else default


def _opt_int(fields: Mapping[str, str], key: str) -> int | None:
    value = _int(fields, key)
    return value or None


def decode(fields: Mapping[str, str], logs: list[Any] | None = None) -> AdminJobData:
    """Build an :class:`AdminJobData` from a record's fields; raises ``ValueError`` if corrupt."""
    options = jsonutil.loads(fields["options"]) if fields.get("options") else {}
    return AdminJobData(
        id=fields["id"],
        state=JobState(name=fields["name"], queue=fields["queue"],
                       data=jsonutil.loads(fields.get("data") or "null"), options=options),
        status=JobStatus(fields.get("status") or "waiting"),
        timestamp=_int(fields, "timestamp"),
        delay_until=_opt_int(fields, "delay_until"),
        lock_until=_opt_int(fields, "lock_until"),
        priority=_int(fields, "priority", int(options.get("priority", 0))),
        retry_count=_int(fields, "retry_count", retries_of(options)),
        retry_delay_ms=_int(fields, "retry_delay_ms", int(options.get("retry_delay_ms", 0))),
        retried_attempts=_int(fields, "retried_attempts"),
        repeat_count=_int(fields, "repeat_count"),
        repeat_delay_ms=_int(fields, "repeat_delay_ms"),
        logs=[LogEntry(**jsonutil.loads(_text(line))) for line in logs or ()],
        errors=[JobError(**e) for e in jsonutil.loads(fields.get("errors") or "[]")],
        last_run=_opt_int(fields, "last_run"),
        paused=fields.get("status") == "paused",
        progress=jsonutil.loads(fields["progress"]) if fields.get("progress") else None,
        result=jsonutil.loads(fields["result"]) if fields.get("result") else None,
        finished_at=_opt_int(fields, "finished_at"),
        next_run=_opt_int(fields, "next_run"),
        deliveries=_int(fields, "deliveries"),
        worker=fields.get("worker") or None,
        cancel_requested=bool(fields.get("cancel_requested")),
    )
