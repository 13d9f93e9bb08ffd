"""Bounded reads of job records, for pages that must not load a job's values whole.

A record can hold megabytes (a task's data up to ``max_payload_bytes``, more when
written before the limit or by hand), and a listing of 50 rows must not move 50 of
them. admin_list.lua and admin_read.lua have two bounded modes (``_admin.lua``'s
bounded_record): ``rows`` leaves out data and result, unread, and cuts the other
values to :data:`ROW_CAP` bytes; ``preview`` cuts every value to the size asked.
A cut value is left out of the fields and described under :data:`CUT`: its size and
a part of it taken in Lua (the head; the tail for errors and progress, where the
latest error and the percent are), so the whole never crosses the wire; a value over
:data:`READ_MAX` times the cap is not read at all (reading any part of a value copies
all of it inside Redis), its part is empty. What a page shows of a cut value is
rebuilt here from that part.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import jsonutil
from ..store import scripts
from ..store.keys import GROUP, QueueKeys
from ..store.records import Raw, pairs_to_dict
from ..store.scripts import Arg, Call
from ..types import AdminJobData
from .admin_calls import ListedJob, Page

#: A listing row's values (progress, errors) are cut to this many bytes.
ROW_CAP = 16_384
#: The job page's values are cut to this many bytes (a download gives the whole).
PREVIEW_CAP = 65_536
#: The field bounded_record adds for what it cut (JSON ``[[field, size, part], ...]``).
CUT = "__cut__"
#: A row's error message is cut to this many characters (the pages show 80).
ROW_MESSAGE = 1000
#: Values over this many times the cap are not read (``_admin.lua``'s READ_MAX).
READ_MAX = 16
TAIL_FIELDS = frozenset({"errors", "progress"})
_PERCENT = re.compile(r'"progress":\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*\}\s*$')


@dataclass(frozen=True)
class Cut:
    """A value too large to read whole: its ``size`` in bytes and the ``part`` read (its
    first bytes; its last for errors and progress; none over ``READ_MAX`` times the cap)."""

    size: int
    part: str


@dataclass(frozen=True)
class JobPreview:
    """A job as the job page shows it. Values over the preview size are in ``cuts``, not
    in ``job`` (``job.state.data`` / ``job.result`` are ``None`` when cut); ``job.errors``
    then holds the latest errors that fit, ``job.progress`` the percent alone."""

    job: AdminJobData
    cuts: dict[str, Cut] = field(default_factory=dict)
    #: the id of its entry in the dead-letter queue (``Sdk.requeue_dlq`` takes it), if the
    #: job is dead-lettered (finish.lua keeps it in the record)
    dead_letter: str | None = None


def _mode(mode: str, cap: int) -> str:
    return f"{mode}:{int(cap)}"


def _records(reply: Any) -> list[Raw]:
    return [(pairs_to_dict(flat), [_text(x) for x in logs]) for _, flat, logs in reply]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read_rows(qk: QueueKeys, job_ids: Sequence[str]) -> Call[list[Raw]]:
    """Listing rows of ``job_ids``, in order (a missing job has no fields)."""
    args: list[Arg] = [qk.job_prefix, qk.logs_prefix, GROUP, _mode("rows", ROW_CAP), *job_ids]
    return Call(scripts.ADMIN_READ, qk.script_keys, args, _records)


def read_preview(qk: QueueKeys, job_id: str, cap: int) -> Call[list[Raw]]:
    """One job's record and logs with every value over ``cap`` bytes cut."""
    args: list[Arg] = [qk.job_prefix, qk.logs_prefix, GROUP, _mode("preview", cap), job_id]
    return Call(scripts.ADMIN_READ, qk.script_keys, args, _records)


def rows_page(qk: QueueKeys, statuses: Sequence[str], offset: int, limit: int,
              oldest: bool = False) -> Call[Page]:
    """A page of one queue with each job's row, newest first (admin_list.lua's page);
    ``oldest``: oldest first (one status only: its index read from the other end)."""
    def parse(reply: Any) -> Page:
        total, entries = reply
        return Page(int(total), [ListedJob(_text(i), float(score), pairs_to_dict(flat))
                                 for i, score, flat in entries])

    args: list[Arg] = [qk.job_prefix, qk.logs_prefix, GROUP, "page", ",".join(statuses),
                       _mode("rows", ROW_CAP), offset, limit, "asc" if oldest else "desc"]
    return Call(scripts.ADMIN_LIST, qk.script_keys, args, parse)


def split_cuts(fields: dict[str, str]) -> tuple[dict[str, str], dict[str, Cut]]:
    """The fields read whole, and what was cut (by field). A :data:`CUT` that is not what
    bounded_record writes is left in the fields, for the decoder to report."""
    raw = fields.get(CUT)
    if raw is None:
        return fields, {}
    try:
        cuts = {str(name): Cut(int(size), str(part)) for name, size, part in jsonutil.loads(raw)}
    except (ValueError, TypeError):
        return fields, {}
    return {k: v for k, v in fields.items() if k != CUT}, cuts


def row_fields(fields: dict[str, str]) -> dict[str, str]:
    """A row's fields, decodable: what a listing shows of a cut value put back small (the
    percent of a progress, the latest error with its message cut), any other cut left out.
    Long errors read whole are cut the same way (a row shows the latest one)."""
    fields, cuts = split_cuts(fields)
    errors = fields.get("errors", "")
    if len(errors) > 2 * ROW_MESSAGE and "errors" not in cuts and latest_errors(errors):
        cuts["errors"] = Cut(len(errors), errors)  # (one that does not read stays, to fail)
    return {**fields, **_rebuilt(cuts, ROW_MESSAGE, last_only=True)}


def preview(fields: dict[str, str]) -> tuple[dict[str, str], dict[str, Cut]]:
    """A previewed record's fields, decodable (as :func:`row_fields`, with every latest
    error that fits), and its cuts."""
    fields, cuts = split_cuts(fields)
    return {**fields, **_rebuilt(cuts, None, last_only=False)}, cuts


def _rebuilt(cuts: dict[str, Cut], message_chars: int | None, *,
             last_only: bool) -> dict[str, str]:
    out = {}
    if "progress" in cuts and (m := _PERCENT.search(cuts["progress"].part)):
        out["progress"] = jsonutil.dumps({"progress": float(m[1])})
    if "errors" in cuts:
        errors = latest_errors(cuts["errors"].part)
        if not cuts["errors"].part and last_only:  # not read at all: the row says so
            errors = [_unread(cuts["errors"].size)]
        if last_only:
            errors = errors[-1:]
        if message_chars is not None:
            errors = [{**e, "message": str(e.get("message", ""))[:message_chars]}
                      for e in errors]
        out["errors"] = jsonutil.dumps(errors)
    return out


def _unread(size: int) -> dict[str, Any]:
    """An entry standing for errors too large to read: the row says so."""
    return {"message": f"(errors of {size:,} bytes, too large to show: open the job to "
            "download them)", "type": "", "traceback": "", "attempt": 0, "timestamp": 0}


def latest_errors(tail: str) -> list[dict[str, Any]]:
    """The whole entries at the end of a record's ``errors`` (a JSON array of flat objects)
    cut from the front: an entry starts at the first ``{"``, which no JSON string holds
    unescaped (a few tries: the first is an entry's start unless the record was written
    by hand)."""
    start = tail.find('{"')
    for _ in range(3):
        if start == -1:
            break
        try:
            found = jsonutil.loads("[" + tail[start:])
        except ValueError:
            start = tail.find('{"', start + 1)
            continue
        return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []
    return []
