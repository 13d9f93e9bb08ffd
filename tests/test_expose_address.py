"""``runworker_remq --expose [HOST:]PORT``: what it accepts, and one line for what it
does not (before anything connects to Redis or listens)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("value", "address"), [
    ("4000", (None, 4000)),  # a bare port keeps working: 127.0.0.1 (the default)
    (4000, (None, 4000)),  # call_command(expose=4000)
    ("0.0.0.0:4000", ("0.0.0.0", 4000)),
    ("192.0.2.7:65535", ("192.0.2.7", 65535)),
    ("localhost:1", ("localhost", 1)),
    ("[::1]:4000", ("::1", 4000)),
    ("[::]:4000", ("::", 4000)),
])
def test_the_forms_it_accepts(value: str | int, address: tuple[str | None, int]) -> None:
    from django_remq.management.commands.runworker_remq import expose_address

    assert expose_address(value) == address


@pytest.mark.parametrize(("value", "says"), [
    ("0", "--expose must be a TCP port (1-65535), got '0'"),
    ("70000", "--expose must be a TCP port (1-65535), got '70000'"),
    ("127.0.0.1:", "--expose must be a TCP port (1-65535), got ''"),
    ("127.0.0.1:http", "--expose must be a TCP port (1-65535), got 'http'"),
    ("::1:4000", "an IPv6 address goes in brackets ([::1]:4000)"),
    ("[::1]4000", "--expose [::1]4000: write PORT (on 127.0.0.1), HOST:PORT"),
    ("[127.0.0.1]:4000", "--expose [127.0.0.1]:4000: write PORT"),
    ("bad_host:4000", "'bad_host' is not an IP address or host name"),
    (":4000", "'' is not an IP address or host name"),
])
def test_a_bad_value_is_one_line_that_shows_the_forms(value: str, says: str) -> None:
    with pytest.raises(CommandError) as refused:
        call_command("runworker_remq", "--expose", value)
    message = str(refused.value)
    assert says in message
    assert "brackets" in says or "--expose 0.0.0.0:4000 (every interface)" in message
    assert "\n" not in message
