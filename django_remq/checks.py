"""System checks (``manage.py check``): every bad ``REMQ`` value, with the fix.

The checks report what :func:`django_remq.conf.problems` finds, so the ids are
stable and shared with the errors raised at run time:

remq.E001  REMQ is not a dict              remq.E006  PROCESSOR rejected by the engine
remq.E002  unknown key (did you mean)      remq.E007  option at the wrong level
remq.E003  wrong type                      remq.E008  bad value (CONCURRENCY, PREFIX, QUEUES,
                                                      SOCKET_*TIMEOUT, CPU_AFFINITY)
remq.E004  not a Redis URL                 remq.E009  STREAM_REDIS_URL differs from REDIS_URL
remq.E005  CTX does not import             remq.W001  a handler's queue no worker serves
remq.E010  ADMIN_PERMISSION does not import or is not callable
remq.E020  GATEWAY: not a dict, unknown key  remq.E021  GATEWAY: bad allowed_events / limit
remq.E022  GATEWAY: a rule does not import   remq.W020  GATEWAY set but no channel layer
remq.E030  CLUSTER with a unix socket or a database other than 0
remq.E040  WAIT_REPLICAS / WAIT_TIMEOUT_MS: bad value, or a wait longer than SOCKET_TIMEOUT
remq.E101..E105  TASKS: a RemqBackend's OPTIONS, QUEUES, or a @task in a queue QUEUES does
                 not list (its ``check()``, in django_remq.backends)
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register

from .conf import problems, raw_settings
from .decorators import registry


@register("remq")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [Error(p.msg, hint=p.hint, id=p.id, obj="settings.REMQ")
            for p in problems(raw_settings())]


@register("remq")
def check_handler_queues(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = raw_settings()
    if problems(raw, import_paths=False):
        return []  # reported by check_settings
    served = raw.get("QUEUES")
    if not served:
        return []  # workers serve every queue with a handler
    return [Warning(f"@handler({d.event!r}) on {d.fn_name} is in queue {d.queue!r}, which "
                    f"REMQ['QUEUES'] = {list(served)!r} does not list.",
                    hint="Add the queue to REMQ['QUEUES'] or run a worker with "
                         f"--queues {d.queue}; otherwise its tasks wait forever.",
                    id="remq.W001", obj=d.fn_name)
            for d in registry if d.queue not in served]


# -- the WebSocket gateway ----------------------------------------------------------


@register("remq")
def check_gateway_channel_layer(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Without a channel layer, workers cannot reach the gateway's connections."""
    from django.conf import settings

    raw = raw_settings()
    if not isinstance(raw, dict) or raw.get("GATEWAY") is None:
        return []
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if "default" in layers:
        return []
    return [Warning(
        "REMQ['GATEWAY'] is set but no channel layer is configured, so workers cannot send "
        "live task events to WebSocket clients.",
        hint="Add CHANNEL_LAYERS = {'default': {'BACKEND': "
             "'channels_redis.core.RedisChannelLayer', 'CONFIG': {'hosts': "
             "['redis://127.0.0.1:6379/0'], 'capacity': 1000}}} (any Redis the workers and "
             "the ASGI server share).",
        id="remq.W020", obj="settings.CHANNEL_LAYERS")]
