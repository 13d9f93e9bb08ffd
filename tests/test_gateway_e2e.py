"""The gateway end to end, with real processes: the ASGI app under daphne, a
``runworker_remq`` worker, and a real WebSocket client (the websockets package)
sending ``x-get-broadcast: true`` as the original's clients do; then the same
through ``runworker_remq --expose PORT`` alone."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect

from .process_stack import Stack, wait_for_port
from .workers import free_port

pytestmark = pytest.mark.processes


async def watch_a_report(url: str, stack: Stack, port: int) -> list[dict[str, Any]]:
    """A broadcast connection's frames for one task another connection emits."""
    async with connect(url, additional_headers=stack.headers(port, **{
            "x-get-broadcast": "true"})) as watcher, \
            connect(url, additional_headers=stack.headers(port)) as emitter:
        await asyncio.sleep(1.5)  # workers re-read the broadcast registry every second
        await emitter.send(json.dumps({"event": "live.report", "data": {
            "steps": 4, "pause": 0.1, "fail_first": True}}))
        queued = json.loads(await asyncio.wait_for(emitter.recv(), 20))
        assert queued["type"] == "queued"
        task_id = queued["taskId"]
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while not any(f["type"] == "task_finished" for f in frames):
            frame = json.loads(await asyncio.wait_for(watcher.recv(), deadline - time.monotonic()))
            if frame.get("taskId") == task_id:
                frames.append(frame)
        try:  # anything more for this task (a second task_finished) would show up here
            while True:
                frame = json.loads(await asyncio.wait_for(watcher.recv(), 3))
                if frame.get("taskId") == task_id:
                    frames.append(frame)
        except TimeoutError:
            pass
        return frames


def assert_report_frames(frames: list[dict[str, Any]]) -> None:
    kinds = [f["type"] for f in frames]
    assert kinds.count("task_finished") == 1
    assert kinds[-1] == "task_finished"
    assert frames[-1]["status"] == "completed"
    assert kinds.count("task_retry") == 1
    retry_at = kinds.index("task_retry")
    assert frames[retry_at]["error"] == "upstream timed out"
    for attempt, part in ((1, frames[:retry_at]), (2, frames[retry_at:])):
        updates = [f for f in part if f["type"] == "task_update"]
        assert [u["progress"] for u in updates] == [25, 50, 75, 100]
        assert {u["data"]["attempt"] for u in updates} == {attempt}
        assert all(u["id"] == u["taskId"] for u in updates)


def test_daphne_and_a_worker_process_deliver_in_order_to_a_broadcast_client(
        stack: Stack) -> None:
    port = free_port()
    daphne = stack.start("daphne", "-b", "127.0.0.1", "-p", str(port),
                         "tests.gateway_asgi:application")
    stack.start("django", "runworker_remq", "--concurrency", "2")
    wait_for_port(port, daphne)
    frames = asyncio.run(watch_a_report(f"ws://127.0.0.1:{port}/ws/remq/", stack, port))
    assert_report_frames(frames)


def test_runworker_expose_serves_the_same_gateway_at_the_root(stack: Stack) -> None:
    port = free_port()
    worker = stack.start("django", "runworker_remq", "--expose", str(port))
    wait_for_port(port, worker)
    frames = asyncio.run(watch_a_report(f"ws://127.0.0.1:{port}/", stack, port))
    assert_report_frames(frames)
