"""Connection caps (``GATEWAY['max_connections']``, ``['max_connections_per_address']``)
on real servers: a daphne serving the gateway as the README mounts it, and a
``runworker_remq --expose`` worker. One connection more than a process may hold is
told ``too_many_connections`` and closed (4503); one that leaves frees its place."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from django_remq.consumers.admission import TOO_MANY_CONNECTIONS

from .hostile_clients import served_on, start_exposed
from .process_stack import Stack
from .test_hostile_gateway import Daphne
from .workers import free_port

pytestmark = pytest.mark.processes


async def opened(url: str, source: str = "127.0.0.1") -> tuple[ClientConnection, dict]:
    """A connection from ``source`` (any 127.x address is this host's) and its first
    answer: to a subscribe without a task id (``invalid_message``) once it is served,
    or the refusal the server sends before it reads anything."""
    ws = await connect(url, local_addr=(source, 0), open_timeout=30)
    with contextlib.suppress(ConnectionClosed):
        await ws.send(json.dumps({"type": "subscribe"}))
    return ws, json.loads(await asyncio.wait_for(ws.recv(), 30))


async def refused(url: str, source: str = "127.0.0.1") -> tuple[str, int | None, str]:
    ws, answer = await opened(url, source)
    assert answer["code"] == "too_many_connections", answer
    await asyncio.wait_for(ws.wait_closed(), 30)
    return answer["message"], ws.close_code, ws.close_reason or ""


async def served(url: str, source: str = "127.0.0.1") -> ClientConnection:
    ws, answer = await opened(url, source)
    assert answer["code"] == "invalid_message", answer
    return ws


def test_daphne_holds_at_most_its_connections_in_all_and_per_address(stack: Stack) -> None:
    daphne = Daphne(stack, REMQ_TEST_MAX_CONNECTIONS="4",
                    REMQ_TEST_MAX_CONNECTIONS_PER_ADDRESS="3")

    async def scenario() -> None:
        first = [await served(daphne.url) for _ in range(3)]
        message, code, _ = await refused(daphne.url)  # a fourth from the same address
        assert "max_connections_per_address" in message
        assert code == TOO_MANY_CONNECTIONS
        other = await served(daphne.url, "127.0.0.2")  # another address: the fourth
        message, code, _ = await refused(daphne.url, "127.0.0.3")
        assert "(max_connections)" in message
        assert code == TOO_MANY_CONNECTIONS
        await first[0].close()
        for _ in range(100):  # its disconnect reaches the consumer soon after
            ws, answer = await opened(daphne.url, "127.0.0.3")
            if answer["code"] == "invalid_message":
                break
            await ws.close()
            await asyncio.sleep(0.1)
        assert answer["code"] == "invalid_message"
        for client in [*first[1:], other, ws]:
            await client.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))
    log = "".join(daphne.lines)
    assert "refused 1 WebSocket connection(s) (closed with 4503)" in log  # then 10 s quiet
    assert log.count("refused") == 1, log


def test_an_exposed_worker_holds_at_most_its_connections(stack: Stack,
                                                         tmp_path: Path) -> None:
    port = free_port()
    stack.env["REMQ_TEST_MAX_CONNECTIONS"] = "2"
    worker = start_exposed(stack, tmp_path / "worker.log", str(port))
    served_on(port=port, proc=worker)
    url = f"ws://127.0.0.1:{port}/"

    async def scenario() -> None:
        kept = [await served(url) for _ in range(2)]
        message, code, reason = await refused(url)
        assert "(max_connections)" in message
        assert (code, reason) == (TOO_MANY_CONNECTIONS, message)  # --expose passes the reason
        for ws in kept:
            await ws.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_daphne_closes_a_flooding_client_with_4029_and_no_traceback(stack: Stack) -> None:
    """Frames over the rate until the close: daphne sends no close code of the 1000s but
    1000, and the 1008 sent before failed the consumer (1011, a traceback per client)."""
    from django_remq.consumers.rate import CLOSE_AFTER_S, TOO_MANY_FRAMES

    rate = 5
    daphne = Daphne(stack, REMQ_TEST_FRAME_RATE=str(rate))

    async def flood() -> int | None:
        async with connect(daphne.url, open_timeout=30) as ws:
            with contextlib.suppress(ConnectionClosed):
                for _ in range(rate * (CLOSE_AFTER_S + 5)):
                    await ws.send(json.dumps({"type": "subscribe"}))
            await asyncio.wait_for(ws.wait_closed(), 30)
            return ws.close_code

    async def another() -> None:
        await (await served(daphne.url)).close()

    assert asyncio.run(flood()) == TOO_MANY_FRAMES
    asyncio.run(asyncio.wait_for(another(), 60))  # the server serves on
    log = "".join(daphne.lines)
    assert "closing a connection that kept sending" in log
    assert "Traceback" not in log, log
