"""``REMQ['CTX']``: built once per process; handlers read it as ``ctx.<name>``."""

from __future__ import annotations

import platform
from typing import Any


def build_ctx() -> dict[str, Any]:
    return {"greeting": "Hello", "host": platform.node()}
