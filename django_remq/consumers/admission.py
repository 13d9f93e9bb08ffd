"""How many WebSocket connections this process holds: in all, and per client address
(``GATEWAY['max_connections']``, ``GATEWAY['max_connections_per_address']``).

A connection over either is accepted, told ``too_many_connections`` and closed at once
with :data:`TOO_MANY_CONNECTIONS` and a reason, before its user, rules or task manager
are looked at: a flood of connections costs a handshake each, and what the process
holds stays bounded. The per-address count is off by default: behind a proxy whose
headers the server does not read (``runworker_remq --expose`` reads none), every client
has the proxy's address. Refusals are logged at most once per :data:`LOG_EVERY_S`, with
how many there were.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("django_remq.gateway")

#: 4000 + HTTP's 503 ("try again later"): daphne sends no close code of the 1000s but 1000
TOO_MANY_CONNECTIONS = 4503
LOG_EVERY_S = 10.0


class Admission:
    """The open connections of one process, counted in by :meth:`enter` and out by
    :meth:`leave`; ``by_address`` holds an entry per address with a connection open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one loop per server, but a process may run several
        self.total = 0
        self.by_address: dict[str, int] = {}
        self._refused = 0
        self._logged = 0.0

    def enter(self, address: str | None, most: int, most_per_address: int | None
              ) -> str | None:
        """Count a connection from ``address`` in: None, or (nothing counted) the reason
        to give its client, at most 123 bytes as a close frame's reason must be."""
        with self._lock:
            if self.total >= most:
                return self._refuse("this server holds all the connections it may "
                                    "(max_connections); try again later",
                                    f"{most} open, GATEWAY['max_connections']")
            held = self.by_address.get(address, 0) if address is not None else 0
            if most_per_address is not None and held >= most_per_address:
                return self._refuse("your address holds all the connections it may "
                                    "(max_connections_per_address)",
                                    f"{held} open from {address}, "
                                    "GATEWAY['max_connections_per_address']")
            self.total += 1
            if address is not None:
                self.by_address[address] = held + 1
            return None

    def leave(self, address: str | None) -> None:
        with self._lock:
            self.total -= 1
            if address is not None:
                held = self.by_address.pop(address, 0) - 1
                if held > 0:
                    self.by_address[address] = held

    def _refuse(self, reason: str, detail: str) -> str:
        self._refused += 1
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY_S:
            log.warning("gateway: refused %d WebSocket connection(s) (closed with %d) since "
                        "the last such line; the last: %s", self._refused,
                        TOO_MANY_CONNECTIONS, detail)
            self._refused, self._logged = 0, now
        return reason


def client_address(scope: Mapping[str, Any]) -> str | None:
    """The client's address as the server saw it (a proxy's, unless it reads its
    headers); None when the server gives none."""
    client = scope.get("client")
    return str(client[0]) if client else None


#: this process's connections
connections = Admission()
