"""Hostile clients against a real daphne serving the gateway as the README mounts it
(tests/gateway_asgi.py): what they send must cost them, not the server.

- refused frames (distinct 60 KB queue names), oversized frames and deeply nested JSON
  from anonymous clients leave the server's memory at its baseline (psutil RSS) and
  its log quiet;
- a page of another web app on the same host (another port) cannot ride a signed-in
  user's cookie: its handshake is refused before any frame is read;
- what one user holds in flight is counted in Redis, so neither more connections nor
  another gateway process gives them more, and a killed gateway leaks nothing.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

import psutil
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from .process_stack import Stack, wait_for_port
from .workers import free_port, wait_until

pytestmark = pytest.mark.processes

NAME_BYTES = 60 * 1024
ALLOWED_GROWTH_MB = 20


class Daphne:
    """A daphne process of the stack, its output drained (and kept) by a thread, so a
    chatty server never blocks on a full pipe."""

    def __init__(self, stack: Stack, **env: str) -> None:
        self.port = free_port()
        saved = stack.env
        stack.env = {**saved, **env}
        try:
            self.proc = stack.start("daphne", "-b", "127.0.0.1", "-p", str(self.port),
                                    "tests.gateway_asgi:application")
        finally:
            stack.env = saved
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        wait_for_port(self.port, self.proc)
        self.url = f"ws://127.0.0.1:{self.port}/ws/remq/"
        self.origin = f"http://127.0.0.1:{self.port}"

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def rss_mb(self) -> float:
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20


@pytest.fixture
def daphne(stack: Stack) -> Daphne:
    return Daphne(stack)


async def exchange(ws: ClientConnection, frames: list[str]) -> list[dict[str, Any]]:
    """Send ``frames`` (pipelined), then read one answer per frame."""
    for frame in frames:
        await ws.send(frame)
    return [json.loads(await asyncio.wait_for(ws.recv(), 60)) for _ in frames]


def subscribes(n: int, name_bytes: int) -> list[str]:
    """Subscribes an anonymous client may not make, each naming a new queue."""
    return [json.dumps({"type": "subscribe", "taskId": "t",
                        "queue": f"{uuid.uuid4().hex}{'q' * (name_bytes - 32)}"})
            for _ in range(n)]


async def attack(url: str, origin: str, *, n: int) -> dict[str, int]:
    """What four anonymous clients send at once: ``n`` subscribes naming a new 60 KB
    queue each, ``n // 3`` naming a new queue of the longest allowed name, ``n // 6``
    frames over the size limit and ``n // 6`` nested 30,000 deep; the answers' codes,
    counted."""
    codes: dict[str, int] = {}

    async def client(frames: list[str]) -> None:
        async with connect(url, additional_headers={"Origin": origin},
                           max_size=None, compression=None) as ws:
            for start in range(0, len(frames), 100):
                for answer in await exchange(ws, frames[start:start + 100]):
                    code = answer.get("code", answer["type"])
                    codes[code] = codes.get(code, 0) + 1

    too_big = json.dumps({"type": "emit", "event": "live.report", "data": "x" * 100_000})
    await asyncio.gather(client(subscribes(n, NAME_BYTES)), client(subscribes(n // 3, 200)),
                         client([too_big] * (n // 6)), client(["[" * 30_000] * (n // 6)))
    return codes


def expected(n: int) -> dict[str, int]:
    return {"invalid_message": n, "not_permitted": n // 3, "too_large": n // 6,
            "invalid_json": n // 6}


def settle(server: Daphne) -> float:
    """The server's RSS once it has let go of a burst (the lowest of a few readings)."""
    readings = []
    for _ in range(5):
        time.sleep(0.3)
        readings.append(server.rss_mb())
    return min(readings)


@pytest.mark.load
def test_refused_oversized_and_nested_frames_leave_memory_at_its_baseline(
        daphne: Daphne) -> None:
    warm = asyncio.run(attack(daphne.url, daphne.origin, n=200))
    assert warm == expected(200), warm
    baseline = settle(daphne)
    started = time.monotonic()
    codes = asyncio.run(attack(daphne.url, daphne.origin, n=2000))
    after = settle(daphne)
    print(f"daphne RSS: {baseline:.1f} MB after warm-up, {after:.1f} MB after 2,000 refused "
          "subscribes naming 60 KB queues, 666 naming 200-character ones, 333 oversized "
          f"and 333 nested frames ({time.monotonic() - started:.1f} s)")
    assert codes == expected(2000), codes
    assert after - baseline < ALLOWED_GROWTH_MB, (baseline, after)
    log = "".join(daphne.lines)
    assert "Traceback" not in log, log[-3000:]
    assert "ERROR" not in log, log[-3000:]


async def handshake_status(url: str, headers: dict[str, str]) -> int:
    """101 when the gateway takes the connection (after checking it can emit), else the
    HTTP status daphne answered the handshake with."""
    try:
        async with connect(url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"event": "live.report", "data": {"steps": 1}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 20))["type"] == "queued"
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def test_a_page_on_another_port_of_the_host_cannot_ride_the_session(
        stack: Stack, daphne: Daphne) -> None:
    cookie = {"Cookie": f"sessionid={stack.session}"}
    port = daphne.port
    for origin, status in ((f"http://127.0.0.1:{port}", 101),  # the site's own pages
                           ("http://127.0.0.1:1", 403),  # another app on this host
                           (f"http://127.0.0.1:{port + 1}", 403),
                           ("http://127.0.0.1", 403),  # port 80 is not the site's
                           (f"http://localhost:{port}", 403),  # not the Host it asked
                           ("null", 403)):  # a sandboxed page, a file
        got = asyncio.run(handshake_status(daphne.url, {**cookie, "Origin": origin}))
        assert got == status, origin
    queued = stack_keys(stack, "*:job:*")
    assert len(queued) == 1  # only the site's own page emitted


def stack_keys(stack: Stack, pattern: str) -> list[str]:
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        return list(client.scan_iter(f"{stack.prefix}:{pattern}", count=1000))
    finally:
        client.close()


async def emit(ws: ClientConnection, **options: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"event": "live.report", "data": {"steps": 1, "pause": 0},
                              "options": options}))
    return dict(json.loads(await asyncio.wait_for(ws.recv(), 20)))


@pytest.mark.load
def test_one_user_holds_a_bounded_number_of_tasks_across_connections_and_processes(
        stack: Stack) -> None:
    """max_in_flight_per_user=5, max_in_flight=3 (tests/django_settings_hostile.py); no
    worker runs until the end, so every emitted task stays in flight."""
    first, second = (Daphne(stack, DJANGO_SETTINGS_MODULE="tests.django_settings_hostile")
                     for _ in range(2))

    async def fill() -> list[str]:
        codes = []
        async with connect(first.url, additional_headers=stack.headers(first.port)) as one, \
                connect(first.url, additional_headers=stack.headers(first.port)) as two:
            codes += [(await emit(one)).get("code", "queued") for _ in range(4)]
            codes += [(await emit(two)).get("code", "queued") for _ in range(3)]
        async with connect(first.url, additional_headers=stack.headers(first.port)) as again:
            codes.append((await emit(again)).get("code", "queued"))  # a reconnect
        async with connect(second.url,
                           additional_headers=stack.headers(second.port)) as other:
            codes.append((await emit(other)).get("code", "queued"))  # another process
            refused = await emit(other, delay_ms=61_000)
            assert refused["code"] == "delay_too_long", refused
            assert "max_client_delay_ms" in refused["message"]
            until = int(time.time() * 1000) + 3_600_000
            assert (await emit(other, delayUntil=until))["code"] == "delay_too_long"
        return codes

    codes = asyncio.run(fill())
    assert codes == ["queued"] * 3 + ["too_many_in_flight"] + ["queued"] * 2 + [
        "too_many_in_flight"] * 3, codes
    first.proc.kill()  # a gateway that crashes never releases its connections' holds
    first.proc.wait()
    stack.start("django", "runworker_remq", "--concurrency", "4")

    async def after_the_tasks_ended() -> bool:
        async with connect(second.url,
                           additional_headers=stack.headers(second.port)) as ws:
            return (await emit(ws)).get("code") is None

    # the holds of ended tasks are dropped when the user is at the limit (checked
    # against the job records at most every few seconds), so the user may emit again
    assert wait_until(lambda: asyncio.run(after_the_tasks_ended()), timeout=30, step=1)
