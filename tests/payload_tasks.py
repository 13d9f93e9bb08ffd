"""Django tasks for the payload-limit tests (found by their module path, as a worker finds
any task module)."""

from __future__ import annotations

from django_remq.backends.compat import task


@task(queue_name="dtasks")
def takes(blob: str) -> None:
    pass


@task(queue_name="dtasks")
def big_result(n: int) -> str:
    return "r" * n
