"""The gateway's own Redis keys and job-record fields (the engine's are in
:mod:`django_remq.core.store.keys`; these sit beside them, under the same prefix).

Layout, for prefix ``remq``::

    remq:gateway:broadcast           ZSET   open broadcast WebSocket connections -> expiry
    remq:gateway:watched             ZSET   job ids followed over the gateway -> expiry
    remq:gateway:holds:<who>         ZSET   "<queue>:<job id>" a gateway user emitted and
                                            may still hold -> deadline (ms); expiring
    remq:gateway:pruned:<who>        STRING present while that user's holds were
                                            checked against their jobs lately

and in a job's record (``remq:{queue}:job:<id>``), extra fields the engine stores and
never reads (``TaskManager.prepare(..., extra=...)``): :data:`WATCH` and :data:`OWNER`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

#: Record field: "1" once a gateway connection follows the job. The workers' sink asks
#: for it with each job to run (``extra_fields``), so the job's live events go to its
#: followers before the watched registry is next read.
WATCH = "watch"
#: Record field: the id of the user who emitted the job over the gateway.
OWNER = "owner"


@dataclass(frozen=True)
class GatewayKeys:
    """Key names of the gateway for one prefix; cheap to create, safe to share."""

    prefix: str = "remq"

    @cached_property
    def broadcast(self) -> str:
        """Open broadcast connections: member = channel name, score = expiry (ms)."""
        return f"{self.prefix}:gateway:broadcast"

    @cached_property
    def watched(self) -> str:
        """Tasks followed over the gateway: member = job id, score = expiry (ms)."""
        return f"{self.prefix}:gateway:watched"

    def holds(self, who: str) -> str:
        """What one gateway user may still hold in flight (``who``: ``user:<pk>`` or
        ``addr:<ip>``): member = ``<queue>:<job id>``, score = deadline (ms)."""
        return f"{self.prefix}:gateway:holds:{who}"

    def holds_pruned(self, who: str) -> str:
        """Present (expiring) while ``who``'s holds were checked against their jobs."""
        return f"{self.prefix}:gateway:pruned:{who}"
