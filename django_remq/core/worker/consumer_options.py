"""ConsumerOptions: how a :class:`.Consumer` reads and runs (the processor builds them
from its settings); its own module, so that the consumer's parts share it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..store.calls import Retention


@dataclass(frozen=True)
class ConsumerOptions:
    queues: Sequence[str] = ("default",)
    concurrency: int = 1
    prefix: str = "remq"
    claim_idle_ms: int = 30_000
    max_deliveries: int = 5
    retention: Retention = field(default_factory=Retention)
    block_ms: int = 1000
    promote_interval_ms: int = 500  # how often paused queues are checked for a resume
    shutdown_timeout_ms: int = 30_000
    priority_aging_ms: int = 30_000
    #: record fields each job to run carries back as ``Message.extra`` (calls.check_extra_fields)
    extra_fields: tuple[str, ...] = ()
    #: how long a finish waits for others to share its call (ProcessorSettings.ack_linger_ms)
    ack_linger_ms: int = 2
