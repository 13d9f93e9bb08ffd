"""The WebSocket gateway (Django Channels): ``TaskGatewayConsumer`` and its parts.

- :mod:`.gateway` the consumer a project mounts (see :mod:`django_remq.routing`);
- :mod:`.protocol` the wire format and its errors;
- :mod:`.policy` ``REMQ['GATEWAY']``: who may emit, follow, broadcast; limits;
- :mod:`.delivery` the worker side: live events into the channel layer;
- :mod:`.expose` ``runworker_remq --expose PORT``: the gateway inside a worker
  (:func:`gateway_server`, the engine's ``expose=``);
- :mod:`.keys` and :mod:`.scripts` what the gateway keeps in Redis, and how.

The engine knows nothing of this package: it is plugged in through the engine's seams
(an event sink, extra record fields, an ``ExposeServer``). Names load on first use, so
the settings checks can read the policy without importing Channels' consumer machinery.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.task_manager import Closer, ExposeServer, TaskManager
    from .gateway import TaskGatewayConsumer

__all__ = ["TaskGatewayConsumer", "gateway_server"]


def gateway_server(port: int, host: str | None = None) -> ExposeServer:
    """The engine's ``expose=`` that serves this gateway from a worker, on ``port`` of
    ``host`` (default 127.0.0.1): ``TaskManager.init(expose=gateway_server(4000))``, as
    ``runworker_remq --expose`` does. The gateway is imported when the worker starts."""
    from ..core.task_manager import ExposeServer

    async def serve(tm: TaskManager, port: int) -> Closer:
        from .expose import serve_for

        return await serve_for(tm, port, host)

    return ExposeServer(port, serve)


def __getattr__(name: str) -> Any:
    if name == "TaskGatewayConsumer":
        return import_module(".gateway", __name__).TaskGatewayConsumer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
