"""Clients that misbehave on purpose, for the ``runworker_remq --expose`` tests: raw
TCP sockets speaking just enough WebSocket to upgrade, then sending frames and never
reading a reply (the client library would read its socket in the background), and a
worker process whose log goes to a file (a flood makes it log more than a pipe holds)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import connect

from .process_stack import Stack, wait_for_port
from .workers import ROOT

UPGRADE = ("GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One final, masked client frame; the mask is four zero bytes, so the payload
    travels as is (any mask is valid, and this one costs the client nothing)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


#: 1 MiB of text: over any frame-size limit the gateway should accept
OVERSIZED = frame(b"x" * (1 << 20))
#: frames under the default 64 KiB limit that the gateway refuses, each with a reply: an
#: emit by a client with no session (not permitted) and a burst of frames that are not JSON
REFUSED = (frame(json.dumps({"event": "live.report", "data": "y" * 60_000}).encode())
           + frame(b"!") * 200)
#: 64 KiB of the smallest frames there are: each one a reply, and an object once parsed
TINY = frame(b"!") * (64 * 1024 // 7)
#: pings, each answered by a pong the client never reads
PINGS = frame(b"p" * 125, opcode=0x9) * 500
#: each kind of flood: the bytes a client sends again and again, and how many frames
KINDS = {"oversized": (OVERSIZED, 1), "refused": (REFUSED, 201), "tiny": (TINY, 64 * 1024 // 7),
         "pings": (PINGS, 500)}


async def upgraded(port: int, host: str = "127.0.0.1", rcvbuf: int | None = None
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection past the opening handshake, its reading paused for good;
    ``rcvbuf``: a small receive window, so that what it leaves unread backs up into the
    server soon (the kernel's would otherwise take megabytes of replies first)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    host = f"[{host}]" if ":" in host else host
    writer.write(UPGRADE.format(host=f"{host}:{port}").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if not head.startswith(b"HTTP/1.1 101"):
        writer.close()
        raise ConnectionError(f"upgrade refused: {head[:80]!r}")
    writer.transport.pause_reading()  # type: ignore[attr-defined]
    return reader, writer


@dataclass
class Flood:
    """What the flooding clients did."""

    connections: int = 0
    frames: int = 0
    sent_bytes: int = 0
    errors: dict[str, int] = field(default_factory=dict)


async def flood(port: int, seconds: float, clients: int) -> Flood:
    """``clients`` connections at a time send oversized and refused frames for
    ``seconds`` and read nothing; a connection the server drops is replaced."""
    stats = Flood()
    until = time.monotonic() + seconds

    async def one(kind: str) -> None:
        data, frames = KINDS[kind]
        while time.monotonic() < until:
            try:
                _, writer = await upgraded(port)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                stats.errors[type(exc).__name__] = stats.errors.get(type(exc).__name__, 0) + 1
                await asyncio.sleep(0.05)
                continue
            stats.connections += 1
            try:
                while (left := until - time.monotonic()) > 0:
                    writer.write(data)
                    await asyncio.wait_for(writer.drain(), left)
                    stats.frames += frames
                    stats.sent_bytes += len(data)
            except (OSError, TimeoutError) as exc:
                stats.errors[type(exc).__name__] = stats.errors.get(type(exc).__name__, 0) + 1
            finally:
                writer.transport.abort()

    kinds = list(KINDS)
    await asyncio.gather(*(one(kinds[i % len(kinds)]) for i in range(clients)))
    return stats


class RssWatch:
    """The peak resident memory of a process, sampled on a thread while a test runs."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.rss())

    @contextmanager
    def watching(self) -> Iterator[RssWatch]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def start_exposed(stack: Stack, log: Path, *expose: str) -> subprocess.Popen[str]:
    """``runworker_remq --expose ...`` on the stack's settings, its output in ``log``."""
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "django", "runworker_remq",
                                 "--expose", *expose], env=stack.env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
    stack.procs.append(proc)
    return proc


def served_on(proc: subprocess.Popen[str], port: int) -> None:
    wait_for_port(port, proc)


def open_sockets(pid: int, port: int) -> list[Any]:
    """The worker's TCP connections on ``port`` that are not closed yet."""
    return [c for c in psutil.Process(pid).net_connections("tcp")
            if c.laddr and c.laddr.port == port and c.raddr
            and c.status not in (psutil.CONN_CLOSE, psutil.CONN_TIME_WAIT)]


async def run_a_task(stack: Stack, port: int) -> dict[str, Any]:
    """A signed-in client emits a short task over the gateway; its ``task_finished``."""
    async with connect(f"ws://127.0.0.1:{port}/", additional_headers=stack.headers(port),
                       open_timeout=20) as ws:
        await ws.send(json.dumps({"event": "live.report", "data": {"steps": 1, "pause": 0}}))
        queued = json.loads(await asyncio.wait_for(ws.recv(), 20))
        assert queued["type"] == "queued", queued
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if msg["type"] == "task_finished" and msg["taskId"] == queued["taskId"]:
                return dict(msg)


async def fill(writer: asyncio.StreamWriter, stalled: float = 3.0, most: float = 20.0) -> float:
    """Send the smallest frames (each one a reply no one reads) until the server stops
    reading them for ``stalled`` s, or ``most`` s pass; when it last took some."""
    started = last = time.monotonic()
    while time.monotonic() - started < most:
        writer.write(TINY)
        try:
            await asyncio.wait_for(writer.drain(), stalled)
        except TimeoutError:
            break
        last = time.monotonic()
    return last


async def read_until_close(reader: asyncio.StreamReader, timeout: float = 5.0
                           ) -> tuple[int, int | None]:
    """Server frames (never masked) until a close frame: how many came before it, and
    its close code (``None``: the connection ended, or went quiet, without one)."""
    frames = 0
    try:
        while True:
            head = await asyncio.wait_for(reader.readexactly(2), timeout)
            n = head[1] & 0x7F
            if n >= 126:
                n = int.from_bytes(await reader.readexactly(2 if n == 126 else 8), "big")
            payload = await asyncio.wait_for(reader.readexactly(n), timeout)
            if head[0] & 0x0F == 0x8:
                return frames, int.from_bytes(payload[:2], "big") if n >= 2 else None
            frames += 1
    except (TimeoutError, OSError, asyncio.IncompleteReadError):
        return frames, None
