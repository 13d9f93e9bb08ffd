"""What every plan of the Sdk shares: the connection, key names, checks of names and
pages, and running a plan with the sync or the asyncio client.

The plans themselves live by subject (:mod:`.jobs`, :mod:`.listings`, :mod:`.queues`,
:mod:`.dead_letters`), each a class over :class:`SdkBase`; :class:`~.client.Sdk` joins
them. State changes are the ``lua/admin_*.lua`` scripts, so each is atomic; listing and
counting read the per-status indexes (``keys.QueueKeys.status``), never SCAN.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Self, TypeVar

from ..errors import InvalidOptions
from ..store.calls import Retention
from ..store.connection import Connection, RedisLike
from ..store.keys import DLQ_NAME, Keys, QueueKeys, validate_dlq_name, validate_queue_name
from ..store.scripts import Call, Step
from . import admin_calls as ac
from .admin_calls import Change
from .plan import Plan, adrive, drive

T = TypeVar("T")
MAX_LIMIT = 1000


class SdkBase:
    """Connection and key names of one prefix (public API: ``Sdk``)."""

    def __init__(self, db: RedisLike | Connection, prefix: str = "remq", *,
                 dlq_key: str | None = None, retention: Retention | None = None,
                 cluster: bool = False) -> None:
        #: whether :meth:`close` closes :attr:`conn`: not when it was given (it is the
        #: giver's, maybe shared); a client given is never closed, only those made here
        self._owns_conn = not isinstance(db, Connection)
        self.conn = db if isinstance(db, Connection) else Connection(db, cluster=cluster)
        self.keys = Keys(prefix)
        try:  # each queue's DLQ stream name (processor.dlq.stream_key)
            self.dlq_key = validate_dlq_name(dlq_key or DLQ_NAME)
        except ValueError as exc:
            raise InvalidOptions(f"dlq_key: {exc}") from None
        self.retention = retention or Retention()
        #: per queue (its keys' base): the lanes the admin scripts asked for so far
        self._lanes_met: dict[str, tuple[int, ...]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.conn!r}, prefix={self.keys.prefix!r})"

    def close(self) -> None:
        """Close the clients this Sdk made (``with Sdk(url) as sdk:`` does it on leaving);
        a :class:`Connection` it was given is left open for its other users."""
        if self._owns_conn:
            self.conn.close()

    async def aclose(self) -> None:
        """:meth:`close`, with the running loop's clients too (``async with Sdk(url)``)."""
        if self._owns_conn:
            await self.conn.aclose()
            self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _run(self, plan: Plan[T]) -> T:
        # clients that do not decode: records, entries and dead letters hold what anyone
        # wrote, decoded value by value where read (store/records.py), so one byte that is
        # not UTF-8 costs its own job, not the reply of a whole page
        return drive(self.conn.raw_sync, plan)

    async def _arun(self, plan: Plan[T]) -> T:
        return await adrive(self.conn.raw_aio, plan)

    def _qk(self, queue: str) -> QueueKeys:
        return self.keys.queue(validate_queue_name(queue))

    def _dlq(self, queue: str) -> str:
        return self._qk(queue).dlq(self.dlq_key)

    def _job(self, job_id: str, queue: str) -> QueueKeys:
        """The queue's keys, once both names are known to be usable."""
        check_job_id(job_id)
        return self._qk(queue)

    def _move(self, qk: QueueKeys, call: Callable[[Sequence[int]], Call[Change]], *,
              along: Sequence[Step] = (), lane: int = 0) -> Plan[Change]:
        """Run a one-job admin script (``call(lanes)``) with the queue's lanes met so far
        (and ``lane``): one round trip, with ``along`` in it. A job on another lane makes
        the script change nothing and name its lane (``_admin.lua``'s ask_lane): pass it
        too and go again, once per lane this Sdk meets. Reading the lanes registry before
        each action instead cost a round trip on every queue, lanes or not."""
        passed = tuple(sorted({*self._lanes_met.get(qk.base, ()), lane} - {0}))
        [change, *_] = yield [call(passed), *along]
        while change.code == "lane":
            if change.lane in passed:  # never: the script had the lane's stream in KEYS
                raise RuntimeError(f"an admin script asked again for lane {change.lane} "
                                   f"of {qk.base}")
            met = {*self._lanes_met.get(qk.base, ()), change.lane}
            self._lanes_met[qk.base] = tuple(sorted(met))
            passed = tuple(sorted({*passed, change.lane}))
            [change] = yield [call(passed)]
        return change  # type: ignore[no-any-return]

    def _queue_names(self, queues: Sequence[str] | None) -> Plan[list[str]]:
        if queues is not None:
            return [validate_queue_name(q) for q in queues]
        [names] = yield [ac.queue_names(self.keys)]
        return names  # type: ignore[no-any-return]


def now_ms() -> int:
    return int(time.time() * 1000)


def check_job_id(job_id: object) -> None:
    if not isinstance(job_id, str) or not job_id:
        raise InvalidOptions(f"job id must be a non-empty string, got {job_id!r}")


def check_page(limit: int, offset: int) -> None:
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidOptions(f"limit must be an int in 1..{MAX_LIMIT}, got {limit!r}")
    if not isinstance(offset, int) or offset < 0:
        raise InvalidOptions(f"offset must be an int >= 0, got {offset!r}")
