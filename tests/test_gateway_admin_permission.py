"""``REMQ["ADMIN_PERMISSION"]`` governs the gateway's broadcast too (by default): the
admin pages' live refresh rides it, and it carries every task's events and data, so a
staff user the pages refuse is refused the broadcast as well."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.http import HttpRequest
from django.test import override_settings

from django_remq import emit
from django_remq.testing import RemqTestEnv

from .gateway_helpers import BOSS, connect, gateway_env, until_finished, worker

pytestmark = pytest.mark.redis

asked: list[HttpRequest] = []


def the_boss_with_the_ops_cookie(request: HttpRequest) -> bool:
    """An ADMIN_PERMISSION as a project would write it, for the pages' requests."""
    asked.append(request)
    return request.user.username == "boss" and request.COOKIES.get("team") == "ops"


def nobody(request: HttpRequest) -> bool:
    return False


@pytest.fixture
def env(redis_url: str) -> Iterator[RemqTestEnv]:
    with gateway_env(redis_url) as test_env:
        yield test_env


def permission(path: str) -> Any:
    return override_settings(REMQ={**settings.REMQ, "ADMIN_PERMISSION": path})


async def wants_broadcast(cookie: bytes = b"team=sales") -> Any:
    return await connect(BOSS, headers=[(b"x-get-broadcast", b"true"), (b"cookie", cookie)])


async def test_staff_the_admin_permission_refuses_get_no_broadcast(env: RemqTestEnv) -> None:
    with permission(f"{__name__}.nobody"):
        comm = await wants_broadcast()
        reply = await comm.receive_json_from(timeout=10)
        await comm.disconnect()
    assert (reply["type"], reply["code"]) == ("error", "not_permitted")


async def test_the_permission_is_asked_with_the_handshake_as_its_request(
        env: RemqTestEnv) -> None:
    asked.clear()
    with permission(f"{__name__}.the_boss_with_the_ops_cookie"):
        refused = await wants_broadcast(b"team=sales")
        reply = await refused.receive_json_from(timeout=10)
        allowed = await wants_broadcast(b"team=ops")
        task_id = emit("live.report", data={"steps": 1, "pause": 0})  # not over the gateway
        async with worker():
            frames = await until_finished(allowed, task_id)
        await refused.disconnect()
        await allowed.disconnect()
    assert reply["code"] == "not_permitted"
    assert frames[-1]["status"] == "completed"  # every task's events reach the allowed one
    assert [(r.user.username, r.path, r.method, r.COOKIES["team"]) for r in asked] == [
        ("boss", "/ws/remq/", "GET", "sales"), ("boss", "/ws/remq/", "GET", "ops")]
