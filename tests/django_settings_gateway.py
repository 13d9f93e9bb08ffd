"""Settings of the gateway's end-to-end processes (daphne, runworker_remq): the worker
test settings plus the gateway's test handlers, a channels-redis layer and GATEWAY."""

from __future__ import annotations

import os

from tests.django_settings_worker import *  # noqa: F403
from tests.django_settings_worker import INSTALLED_APPS, REMQ

INSTALLED_APPS = [*INSTALLED_APPS, "tests.gateway_app"]
#: tests flood on purpose: the frame rate is unlimited unless a test sets REMQ_TEST_FRAME_RATE
FRAME_RATE = int(os.environ.get("REMQ_TEST_FRAME_RATE", "1000000"))
#: the connection caps, when a test sets them (REMQ_TEST_MAX_CONNECTIONS[_PER_ADDRESS])
CAPS = {key: int(os.environ[f"REMQ_TEST_{key.upper()}"])
        for key in ("max_connections", "max_connections_per_address")
        if f"REMQ_TEST_{key.upper()}" in os.environ}
REMQ = {**REMQ, "GATEWAY": {"max_frames_per_second": FRAME_RATE, **CAPS}}
CHANNEL_LAYERS = {"default": {
    "BACKEND": "channels_redis.core.RedisChannelLayer",
    "CONFIG": {"hosts": [os.environ.get("REMQ_REDIS_URL", REMQ["REDIS_URL"])],
               "prefix": os.environ.get("REMQ_TEST_LAYER_PREFIX", "asgi")},
}}
