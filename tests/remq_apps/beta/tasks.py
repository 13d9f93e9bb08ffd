"""Handlers of test app "beta" (found by autodiscovery; queue "beta")."""

from __future__ import annotations

from typing import Any

from django_remq import handler


@handler("beta.greet", queue="beta")
async def greet(task: Any, ctx: Any) -> str:
    return f"{ctx.get('greeting', 'hello')} {task.data}"
