"""Settings of the hostile-client tests' daphne processes: the gateway's end-to-end
settings with small per-user and per-connection limits and a short delay cap."""

from __future__ import annotations

from tests.django_settings_gateway import *  # noqa: F403
from tests.django_settings_gateway import FRAME_RATE, REMQ

REMQ = {**REMQ, "GATEWAY": {"max_in_flight": 3, "max_in_flight_per_user": 5,
                            "max_client_delay_ms": 60_000,
                            "max_frames_per_second": FRAME_RATE}}
