import pytest

from django_remq.core import TaskManager

from .cluster import on_both

pytestmark = pytest.mark.redis


@on_both()
async def test_emit_then_burst_completes(make_tm, r, prefix):
    tm: TaskManager = make_tm(concurrency=2)
    seen = []

    async def handler(task, ctx):
        seen.append(task.data)
        return task.data * 2

    tm.register_handler(event="double", handler=handler)
    job_id = tm.emit("double", data=21)
    await tm.run(burst=True)
    assert seen == [21]
    record = r.hgetall(f"{prefix}:{{default}}:job:{job_id}")
    assert record["status"] == "completed"
    assert record["result"] == "42"
