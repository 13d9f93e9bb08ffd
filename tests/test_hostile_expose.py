"""``runworker_remq --expose``: hostile clients cost the attacker, not the worker.

Real worker processes, real sockets: clients that flood frames and never read, TCP
connections that never finish the upgrade, and where the server listens."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from .hostile_clients import RssWatch, flood, open_sockets, run_a_task, served_on, start_exposed
from .process_stack import Stack
from .workers import free_port

pytestmark = pytest.mark.processes

MB = 1 << 20


def test_a_flood_of_frames_no_one_reads_leaves_the_worker_as_it_was(
        stack: Stack, tmp_path: Path) -> None:
    """Oversized frames, refused ones, the smallest frames and pings, from clients that
    read nothing: the worker holds a bounded few MB while it lasts and is back to its
    baseline after, and runs tasks throughout."""
    port = free_port()
    worker = start_exposed(stack, tmp_path / "worker.log", str(port))
    served_on(port=port, proc=worker)
    assert asyncio.run(run_a_task(stack, port))["status"] == "completed"
    asyncio.run(flood(port, seconds=2, clients=4))  # warm-up: every path has run once
    assert asyncio.run(run_a_task(stack, port))["status"] == "completed"
    time.sleep(1)
    watch = RssWatch(worker.pid)
    baseline = watch.rss()
    with watch.watching():
        stats = asyncio.run(flood(port, seconds=8, clients=16))
        deadline = time.monotonic() + 20
        while open_sockets(worker.pid, port) and time.monotonic() < deadline:
            time.sleep(0.2)
    time.sleep(1)
    after = watch.rss()
    figures = (f"RSS baseline {baseline / MB:.0f} MB, peak {watch.peak / MB:.0f} MB, after "
               f"{after / MB:.0f} MB; {stats}")
    assert stats.frames > 5000, figures
    assert not open_sockets(worker.pid, port), figures
    assert watch.peak - baseline < 60 * MB, figures
    assert after - baseline < 20 * MB, figures
    assert asyncio.run(run_a_task(stack, port))["status"] == "completed"
