"""``runworker_remq --expose``: hostile clients cost the attacker, not the worker.

Real worker processes, real sockets: clients that flood frames and never read, TCP
connections that never finish the upgrade, and where the server listens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from .hostile_clients import (
    RssWatch,
    fill,
    flood,
    open_sockets,
    read_until_close,
    run_a_task,
    served_on,
    start_exposed,
    upgraded,
)
from .process_stack import Stack
from .workers import ROOT, await_until, free_port, wait_until

pytestmark = pytest.mark.processes

MB = 1 << 20


@pytest.mark.load
def test_a_flood_of_frames_no_one_reads_leaves_the_worker_as_it_was(
        stack: Stack, tmp_path: Path) -> None:
    """Oversized frames, refused ones, the smallest frames and pings, from clients that
    read nothing: the worker holds a bounded few MB while it lasts and is back to its
    baseline after, and still runs tasks."""
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
    print(figures)  # pytest -s shows them
    assert stats.frames > 5000, figures
    assert not open_sockets(worker.pid, port), figures
    assert watch.peak - baseline < 60 * MB, figures
    assert after - baseline < 20 * MB, figures
    assert asyncio.run(run_a_task(stack, port))["status"] == "completed"


@pytest.mark.load
def test_a_client_that_reads_nothing_is_closed_1013_then_dropped(
        stack: Stack, tmp_path: Path) -> None:
    """Two clients send frames that each get a reply and read none: once the server has
    waited SEND_TIMEOUT_S on them it closes both with 1013 (one that reads then finds
    its replies and the close frame), and drops the one that never reads when the
    close times out; a real client is served throughout."""
    from django_remq.consumers.expose import CLOSE_TIMEOUT_S, SEND_TIMEOUT_S, SLOW_CLIENT_CODE

    port, log = free_port(), tmp_path / "worker.log"
    worker = start_exposed(stack, log, str(port))
    served_on(port=port, proc=worker)

    def closed_for_not_reading(client: asyncio.StreamWriter) -> bool:
        peer = f"127.0.0.1:{client.get_extra_info('sockname')[1]}"
        return f"closing the connection of {peer}: it has not read" in log.read_text()

    async def scenario() -> tuple[tuple[int, int | None], float, float]:
        started = time.monotonic()
        (late, late_writer), (_, never) = [await upgraded(port, rcvbuf=4096) for _ in "ab"]
        never_port = never.get_extra_info("sockname")[1]

        async def reads_once_closed() -> tuple[tuple[int, int | None], float]:
            # watched from the start: the close frame waits CLOSE_TIMEOUT_S for a reader,
            # and on a loaded host the fills (up to 20 s while the kernel's buffers take
            # frames) and a task run each took that long (CI lost the close so, twice)
            assert await await_until(lambda: closed_for_not_reading(late_writer), 40)
            closed = time.monotonic() - started
            late_writer.transport.resume_reading()  # type: ignore[attr-defined]
            return await read_until_close(late), closed

        watch = asyncio.ensure_future(reads_once_closed())
        await asyncio.gather(fill(late_writer), fill(never))
        assert (await run_a_task(stack, port))["status"] == "completed"
        replies_then_close, closed = await watch
        late_writer.transport.abort()
        assert closed_for_not_reading(never)
        assert await await_until(lambda: all(
            c.raddr.port != never_port for c in open_sockets(worker.pid, port)), 40)
        never.transport.abort()
        return replies_then_close, closed, time.monotonic() - started

    (replies, code), closed, dropped = asyncio.run(asyncio.wait_for(scenario(), 90))
    # the refusals it did not read (what the socket buffers held: 850 to a few thousand,
    # by the host's load and buffer sizes; far more than a 4 KB receive buffer), then
    seen = (f"{replies} replies, close code {code}, closed after {closed:.1f} s, dropped "
            f"after {dropped:.1f} s; the worker's log:\n{log.read_text()[-3000:]}")
    assert replies > 200, seen
    assert code == SLOW_CLIENT_CODE, seen
    assert SEND_TIMEOUT_S < closed < SEND_TIMEOUT_S + 10, seen
    assert dropped < SEND_TIMEOUT_S + CLOSE_TIMEOUT_S + 10
    assert asyncio.run(run_a_task(stack, port))["status"] == "completed"


def test_clients_that_read_nothing_do_not_hold_up_a_stop(stack: Stack, tmp_path: Path) -> None:
    """SIGTERM while clients that read nothing have replies backed up: their close
    (1001) cannot reach them, and the worker still stops within STOP_CLOSE_S or so."""
    from django_remq.consumers.expose import STOP_CLOSE_S

    port = free_port()
    worker = start_exposed(stack, tmp_path / "worker.log", str(port))
    served_on(port=port, proc=worker)

    async def backed_up() -> list[asyncio.StreamWriter]:
        writers = [(await upgraded(port, rcvbuf=4096))[1] for _ in range(5)]
        await asyncio.gather(*(fill(writer, most=5) for writer in writers))
        return writers

    loop = asyncio.new_event_loop()
    try:
        writers = loop.run_until_complete(backed_up())
        started = time.monotonic()
        worker.terminate()
        code = worker.wait(60)
        took = time.monotonic() - started
        for writer in writers:
            writer.transport.abort()
    finally:
        loop.close()
    assert code == 0
    assert took < STOP_CLOSE_S + 5


@pytest.mark.load  # bounded below by OPEN_TIMEOUT_S (10 s): once, not on every leg
def test_half_open_handshakes_are_closed_within_the_bound(stack: Stack, tmp_path: Path) -> None:
    """Connections that never finish the HTTP upgrade (silent, half a request, a byte at
    a time) are closed by the server within OPEN_TIMEOUT_S; a real client is served
    meanwhile."""
    from django_remq.consumers.expose import OPEN_TIMEOUT_S

    port = free_port()
    worker = start_exposed(stack, tmp_path / "worker.log", str(port))
    served_on(port=port, proc=worker)
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"

    async def closed_after(reader: asyncio.StreamReader, started: float) -> float:
        with contextlib.suppress(OSError):
            await reader.read()  # until the server ends it
        return time.monotonic() - started

    async def trickle(writer: asyncio.StreamWriter) -> None:
        for byte in request * 10:  # one byte every half second: never a whole request
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except OSError:
                return
            await asyncio.sleep(0.5)

    async def scenario() -> tuple[list[float], str]:
        started = time.monotonic()
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(30)]
        for _, writer in conns[10:20]:
            writer.write(request)  # half a request
        trickles = [asyncio.create_task(trickle(writer)) for _, writer in conns[20:]]
        served = await run_a_task(stack, port)
        after = await asyncio.gather(*(closed_after(reader, started) for reader, _ in conns))
        for task in trickles:
            task.cancel()
        for _, writer in conns:
            writer.transport.abort()
        return after, served["status"]

    after, status = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert status == "completed"
    assert all(OPEN_TIMEOUT_S - 1 < t < OPEN_TIMEOUT_S + 5 for t in after), after
    assert not open_sockets(worker.pid, port)


def listening(pid: int, port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def other_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, if it has one."""
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return str(a.address)
    return None


def reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=3).close()
        return True
    except OSError:
        return False


def test_it_listens_on_loopback_unless_told_where(stack: Stack, tmp_path: Path) -> None:
    """A bare PORT listens on 127.0.0.1 only; 0.0.0.0:PORT and [::1]:PORT where they
    say; an address it cannot listen on stops the worker with one line."""
    ports = {"default": free_port(), "wide": free_port(), "v6": free_port()}
    workers = {"default": start_exposed(stack, tmp_path / "d.log", str(ports["default"])),
               "wide": start_exposed(stack, tmp_path / "w.log", f"0.0.0.0:{ports['wide']}"),
               "v6": start_exposed(stack, tmp_path / "6.log", f"[::1]:{ports['v6']}")}
    for name in ("default", "wide"):
        served_on(port=ports[name], proc=workers[name])
    assert wait_until(lambda: listening(workers["v6"].pid, ports["v6"]), 60)
    assert listening(workers["default"].pid, ports["default"]) == {"127.0.0.1"}
    assert listening(workers["wide"].pid, ports["wide"]) == {"0.0.0.0"}
    assert listening(workers["v6"].pid, ports["v6"]) == {"::1"}
    other = other_address()
    if other is not None:
        assert not reachable(other, ports["default"])
        assert reachable(other, ports["wide"])
    assert asyncio.run(run_a_task(stack, ports["default"]))["status"] == "completed"

    async def upgrade_v6() -> None:
        _, writer = await upgraded(ports["v6"], "::1")
        writer.transport.abort()

    asyncio.run(upgrade_v6())
    taken = ports["default"]
    run = subprocess.run([sys.executable, "-m", "django", "runworker_remq", "--expose",
                          str(taken)], env=stack.env, cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode == 1, run.stderr
    assert f"cannot listen on ws://127.0.0.1:{taken}/" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_page_of_another_origin_is_refused_even_on_this_host(
        stack: Stack, tmp_path: Path) -> None:
    """The Channels gateway's Origin rule, ports included: a page of another web app on
    this host (another port) or another site cannot ride a signed-in user's cookie; the
    server's own origin, and a client that sends no Origin, are let through."""
    port = free_port()
    worker = start_exposed(stack, tmp_path / "worker.log", str(port))
    served_on(port=port, proc=worker)

    async def closed_with(origin: str | None) -> int | None:
        headers = {k: v for k, v in stack.headers(port).items() if k != "Origin"}
        if origin is not None:
            headers["Origin"] = origin
        async with connect(f"ws://127.0.0.1:{port}/", additional_headers=headers) as ws:
            try:  # the close may come before the send, or after
                await ws.send(json.dumps({"event": "live.report", "data": {"steps": 1}}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 20))
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd is not None else None
            assert reply["type"] == "queued", reply
            return None

    async def scenario() -> list[int | None]:
        return [await closed_with(origin) for origin in (
            "http://127.0.0.1:1", "http://evil.example", f"http://localhost:{port}",
            f"http://127.0.0.1:{port}", None)]

    assert asyncio.run(scenario()) == [4003, 4003, 4003, None, None]


@pytest.mark.load
def test_a_client_over_the_frame_rate_is_told_once_then_dropped_then_closed(
        stack: Stack, tmp_path: Path) -> None:
    """GATEWAY['max_frames_per_second'] on a real --expose worker: frames over the rate
    are dropped unread, the first with one ``rate_limited`` answer; a client that keeps
    on is closed with 4029; another connection is served throughout."""
    from django_remq.consumers.rate import TOO_MANY_FRAMES

    rate = 20
    stack.env["REMQ_TEST_FRAME_RATE"] = str(rate)
    port = free_port()
    worker = start_exposed(stack, tmp_path / "worker.log", str(port))
    served_on(port=port, proc=worker)
    bad = json.dumps({"type": "subscribe"})  # each answered by an error when read

    async def scenario() -> tuple[list[dict[str, Any]], int | None]:
        answers: list[dict[str, Any]] = []
        async with connect(f"ws://127.0.0.1:{port}/", additional_headers=stack.headers(port),
                           open_timeout=20) as ws:
            code = None
            try:
                for _ in range(rate * 20):  # 20 s worth of the rate, sent at once
                    await ws.send(bad)
                while True:
                    answers.append(json.loads(await asyncio.wait_for(ws.recv(), 20)))
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
        return answers, code

    answers, code = asyncio.run(scenario())
    codes = [a["code"] for a in answers]
    assert codes.count("rate_limited") == 1, codes
    # the burst the bucket holds, and what it refilled while the flood was read
    assert rate <= codes.count("invalid_message") < rate * 5, codes
    assert code == TOO_MANY_FRAMES
    assert asyncio.run(run_a_task(stack, port))["status"] == "completed"
