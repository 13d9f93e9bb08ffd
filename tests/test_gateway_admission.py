"""The per-process connection count behind ``GATEWAY['max_connections']`` and
``['max_connections_per_address']`` (the servers' side: tests/test_hostile_connections.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from django_remq.consumers.admission import Admission, client_address

pytestmark = pytest.mark.unit


def test_counts_in_all_and_per_address_and_forgets_an_address_that_left() -> None:
    seats = Admission()
    assert [seats.enter("10.0.0.1", 3, 2) for _ in range(2)] == [None, None]
    assert "max_connections_per_address" in (seats.enter("10.0.0.1", 3, 2) or "")
    assert seats.enter("10.0.0.2", 3, 2) is None
    assert "(max_connections)" in (seats.enter("10.0.0.3", 3, None) or "")
    assert (seats.total, seats.by_address) == (3, {"10.0.0.1": 2, "10.0.0.2": 1})
    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
        seats.leave(address)
    assert (seats.total, seats.by_address) == (0, {})  # bounded by what is open
    assert seats.enter(None, 1, 1) is None  # no address (a server that gives none)
    assert seats.enter(None, 1, 1) is not None


def test_a_reason_fits_a_close_frame_and_refusals_are_logged_once_a_while(
        caplog: pytest.LogCaptureFixture) -> None:
    seats = Admission()
    seats.enter("10.0.0.1", 1, 1)
    with caplog.at_level(logging.WARNING, logger="django_remq.gateway"):
        reasons = [seats.enter("10.0.0.1", 5, 1), seats.enter("10.0.0.2", 1, None),
                   *(seats.enter("10.0.0.2", 1, None) for _ in range(50))]
    assert all(reason is not None and len(reason.encode()) <= 123 for reason in reasons)
    [line] = [r.getMessage() for r in caplog.records]
    assert "refused 1 WebSocket connection(s)" in line
    assert "1 open from 10.0.0.1" in line


def test_the_client_address_is_the_scopes() -> None:
    assert client_address({"client": ("192.0.2.7", 5123)}) == "192.0.2.7"
    assert client_address({"client": None}) is None
    assert client_address({}) is None


@pytest.mark.redis
async def test_a_consumer_gives_its_place_back_however_it_ends(redis_url: str) -> None:
    """Its disconnect, or a cancel before the disconnect ran (the server's close timeout
    while a frame waits on Redis): a place taken for good would refuse everyone in time,
    and its rounds (registry, reconcile) would go on reading Redis for no one."""
    from django_remq.consumers.admission import connections
    from django_remq.consumers.gateway import KEEPER

    def rounds() -> int:
        return sum(t.get_name() == KEEPER and not t.done() for t in asyncio.all_tasks())

    from .gateway_helpers import ANON, connect, gateway_env

    with gateway_env(redis_url):
        before = connections.total
        comm = await connect(ANON)
        assert (connections.total, rounds()) == (before + 1, 1)
        await comm.disconnect()
        await asyncio.sleep(0)  # the cancelled rounds end
        assert (connections.total, rounds()) == (before, 0)
        comm = await connect(ANON)
        assert (connections.total, rounds()) == (before + 1, 1)
        comm.future.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await comm.future
        await asyncio.sleep(0)
        assert (connections.total, rounds()) == (before, 0)
