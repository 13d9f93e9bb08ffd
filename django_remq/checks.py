"""System checks (``manage.py check``): every bad ``REMQ`` value, with the fix.

The checks report what :func:`django_remq.conf.problems` finds, so the ids are
stable and shared with the errors raised at run time:

remq.E001  REMQ is not a dict              remq.E006  PROCESSOR rejected by the engine
remq.E002  unknown key (did you mean)      remq.E007  option at the wrong level
remq.E003  wrong type                      remq.E008  bad value (CONCURRENCY, PREFIX, QUEUES)
remq.E004  not a Redis URL                 remq.E009  STREAM_REDIS_URL differs from REDIS_URL
remq.E005  CTX does not import             remq.W001  a handler's queue no worker serves
remq.E020  CLUSTER with a unix socket or a database other than 0
remq.W020  CLUSTER with a redis-py whose asyncio cluster client is unsafe
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register

from .conf import problems, raw_settings
from .core.store.connection import cluster_client_problem
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


@register("remq")
def check_cluster_client(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = raw_settings()
    problem = cluster_client_problem()
    if not isinstance(raw, dict) or raw.get("CLUSTER") is not True or problem is None:
        return []
    return [Warning(f"REMQ['CLUSTER'] is True, but {problem.split(';')[0]}.",
                    hint=problem.split("; ", 1)[1].capitalize() + ".", id="remq.W020",
                    obj="settings.REMQ")]
