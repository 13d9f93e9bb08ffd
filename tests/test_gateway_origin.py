"""The gateway's Origin check (django_remq/consumers/origin.py): the port and scheme
count, the default is the site's own origin, and any header a client sends ends in a
yes or a no. Against a real daphne: tests/test_hostile_gateway.py."""

from __future__ import annotations

from typing import Any

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from django_remq.consumers.origin import RemqOriginValidator, origin_allowed, parse_origin

pytestmark = pytest.mark.unit

HOSTS = ["app.example", "127.0.0.1", "[::1]", ".sub.example"]


@pytest.mark.parametrize(("origin", "host", "scheme", "ok"), [
    (None, "app.example", "ws", True),  # no browser, no one else's cookies
    ("http://app.example", "app.example", "ws", True),
    ("https://app.example", "app.example", "ws", True),  # TLS ended by a proxy
    ("HTTPS://App.Example:443", "app.example", "ws", True),
    ("https://app.example", "app.example", "wss", True),
    ("http://app.example", "app.example", "wss", False),  # a plain page on a TLS site
    ("http://app.example:8080", "app.example", "ws", False),  # another port
    ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws", True),
    ("http://127.0.0.1:8000/", "127.0.0.1:8000", "ws", True),
    ("http://127.0.0.1:1", "127.0.0.1:8000", "ws", False),  # another app on the host
    ("http://127.0.0.1", "127.0.0.1:8000", "ws", False),
    ("http://localhost:8000", "127.0.0.1:8000", "ws", False),  # not the Host asked
    ("http://[::1]:8000", "[::1]:8000", "ws", True),
    ("http://[::1]:8001", "[::1]:8000", "ws", False),
    ("http://a.sub.example", "a.sub.example", "ws", True),  # ALLOWED_HOSTS' ".sub..."
    ("http://evil.example", "evil.example", "ws", False),  # Host not in ALLOWED_HOSTS
    ("http://app.example", None, "ws", False),
    ("null", "app.example", "ws", False),  # a sandboxed page, a file
    ("file://", "app.example", "ws", False),
    ("http://app.example/path", "app.example", "ws", False),
    ("http://user@app.example", "app.example", "ws", False),
    ("http://app.example:99999", "app.example", "ws", False),
    ("", "app.example", "ws", False),
])
def test_the_default_is_the_sites_own_origin(origin: str | None, host: str | None,
                                             scheme: str, ok: bool) -> None:
    assert origin_allowed(origin, host, None, scheme=scheme, allowed_hosts=HOSTS) is ok


@pytest.mark.parametrize(("origin", "allowed", "ok"), [
    ("https://app.example", ["https://app.example"], True),
    ("https://app.example:443", ["https://app.example"], True),
    ("https://app.example", ["https://app.example:443/"], True),
    ("http://app.example", ["https://app.example"], False),
    ("https://app.example:8443", ["https://app.example"], False),
    ("http://localhost:3000", ["http://localhost:3000", "https://app.example"], True),
    ("http://anything.example:1", ["*"], True),
    ("https://app.example", [], False),
    ("null", ["https://app.example"], False),
])
def test_allowed_origins_are_exact_scheme_host_and_port(origin: str, allowed: list[str],
                                                        ok: bool) -> None:
    assert origin_allowed(origin, "elsewhere", allowed, allowed_hosts=[]) is ok


def test_the_default_reads_allowed_hosts_as_django_does() -> None:
    with override_settings(ALLOWED_HOSTS=["app.example"], DEBUG=False):
        assert origin_allowed("http://app.example", "app.example", None)
        assert not origin_allowed("http://other.example", "other.example", None)
    with override_settings(ALLOWED_HOSTS=[], DEBUG=True):  # runserver's defaults
        assert origin_allowed("http://localhost:8000", "localhost:8000", None)
        assert not origin_allowed("http://app.example", "app.example", None)


@given(st.one_of(st.none(), st.text(max_size=60), st.from_regex(
    r"\A(https?|wss?|file)://[a-z0-9.\[\]:@-]{0,30}(:\d{0,6})?/?\Z")),
    st.one_of(st.none(), st.text(max_size=40), st.from_regex(r"\A[a-z0-9.\[\]:]{0,30}\Z")),
    st.one_of(st.none(), st.lists(st.text(max_size=30), max_size=3)),
    st.sampled_from([None, "ws", "wss", "http", "x"]))
def test_any_headers_end_in_a_yes_or_a_no(origin: str | None, host: str | None,
                                          allowed: list[str] | None, scheme: str | None) -> None:
    verdict = origin_allowed(origin, host, allowed, scheme=scheme, allowed_hosts=["*"])
    assert verdict in (True, False)
    if origin is not None and parse_origin(origin) is None:
        assert verdict is False  # what is not an origin is never let in


class Accept(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        await self.accept()


async def handshake(headers: list[tuple[bytes, bytes]], **gateway: Any) -> bool:
    with override_settings(ALLOWED_HOSTS=["127.0.0.1"], REMQ={"GATEWAY": gateway}):
        comm = WebsocketCommunicator(RemqOriginValidator(Accept.as_asgi()), "/ws/remq/",
                                     headers=headers)
        connected, _ = await comm.connect(timeout=5)
        await comm.disconnect()
        return bool(connected)


async def test_the_middleware_refuses_before_the_application_runs() -> None:
    host = (b"host", b"127.0.0.1:8000")
    assert await handshake([host, (b"origin", b"http://127.0.0.1:8000")])
    assert not await handshake([host, (b"origin", b"http://127.0.0.1:1")])
    assert await handshake([host])  # a client that is not a browser
    assert await handshake([host, (b"origin", b"http://127.0.0.1:1")],
                           allowed_origins=["http://127.0.0.1:1"])
    assert not await handshake([host, (b"origin", b"http://127.0.0.1:8000")],
                               allowed_origins=["http://127.0.0.1:1"])
