"""The WebSocket gateway (Django Channels): ``TaskGatewayConsumer`` and its parts.

- :mod:`.gateway` the consumer a project mounts (see :mod:`django_remq.routing`);
- :mod:`.protocol` the wire format and its errors;
- :mod:`.policy` ``REMQ['GATEWAY']``: who may emit, follow, broadcast; limits;
- :mod:`.delivery` the worker side: live events into the channel layer;
- :mod:`.expose` ``runworker_remq --expose PORT``: the gateway inside a worker.

Names load on first use, so the settings checks can read the policy without
importing Channels' consumer machinery.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .gateway import TaskGatewayConsumer

__all__ = ["TaskGatewayConsumer", "install_expose"]


def install_expose() -> None:
    """Let the engine's ``expose=PORT`` serve this gateway (imports it when used)."""
    from ..core import TaskManager

    async def serve(tm: TaskManager, port: int) -> Callable[[], Awaitable[None]]:
        from .expose import serve_for

        return await serve_for(tm, port)

    TaskManager.gateway_server = serve


def __getattr__(name: str) -> Any:
    if name == "TaskGatewayConsumer":
        return import_module(".gateway", __name__).TaskGatewayConsumer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
