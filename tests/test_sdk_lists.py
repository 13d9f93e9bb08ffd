"""Sdk listing, stats and queues: pages from the status indexes match a brute-force sort."""

from __future__ import annotations

import pytest

from django_remq.core import InvalidOptions, TaskManager
from django_remq.core.sdk import Sdk, listings
from django_remq.core.store.keys import Keys
from django_remq.types import JobStatus

from .cluster import on_both
from .sdk_seed import dead_letter, seed_finished

pytestmark = pytest.mark.redis


@pytest.fixture
def sdk(redis_url: str, prefix: str, on_cluster: bool) -> Sdk:
    return Sdk(redis_url, prefix=prefix, cluster=on_cluster)


def all_sorted(r, prefix, queues):
    """Every indexed job, in the documented order (score desc, queue, status, id desc)."""
    rows = []
    for qi, q in enumerate(queues):
        for si, s in enumerate(JobStatus):
            for job_id, score in r.zrange(Keys(prefix).queue(q).status(s), 0, -1,
                                          withscores=True):
                rows.append((-score, qi, si, [-ord(c) for c in job_id], job_id))
    return [row[-1] for row in sorted(rows)]


@pytest.fixture
def mixed(r, prefix, make_tm):
    """Two queues, several statuses, many jobs sharing one millisecond (ties)."""
    tm: TaskManager = make_tm()
    tm.emit_many([{"event": "a", "data": i} for i in range(30)])
    tm.emit_many([{"event": "b", "queue": "other", "data": i} for i in range(20)])
    tm.emit("a", options={"delay_ms": 60_000})
    seed_finished(r, prefix, "default", 40, "completed")
    seed_finished(r, prefix, "other", 25, "failed", start_ms=1_700_000_000_020)
    return ["default", "other"]


def ids(jobs):
    return [j.id for j in jobs]


def test_list_one_queue_one_status_newest_first(sdk, r, prefix, mixed):
    expected = [i for i in all_sorted(r, prefix, ["default"]) if i.startswith("completed")]
    assert ids(sdk.list_jobs("default", "completed", limit=1000)) == expected
    assert ids(sdk.list_jobs("default", "completed", limit=7, offset=30)) == expected[30:37]
    assert expected[0] == "completed-0000039"


@pytest.mark.parametrize("shallow", [1000, 1])  # 1: every page goes through bisection
@on_both()
def test_pages_across_statuses_and_queues_match_brute_force(sdk, r, prefix, mixed, shallow,
                                                            monkeypatch):
    monkeypatch.setattr(listings, "SHALLOW", shallow)
    for queues, queue in ((["default"], "default"), (mixed, None)):
        expected = all_sorted(r, prefix, queues)
        for offset, limit in ((0, 5), (3, 10), (29, 3), (31, 40), (len(expected) - 2, 10),
                              (len(expected), 5)):
            got = ids(sdk.list_jobs(queue, limit=limit, offset=offset))
            assert got == expected[offset:offset + limit], (queue, offset, limit)


@on_both()
async def test_list_filters_by_status_across_queues(sdk, mixed):
    failed = await sdk.alist_jobs(status="failed", limit=100)
    assert len(failed) == 25
    assert {j.state.queue for j in failed} == {"other"}
    assert {j.status for j in sdk.list_jobs(status="waiting", limit=100)} == {"waiting"}
    assert len(sdk.list_jobs(status="waiting", limit=100)) == 50


def test_search_on_id_and_name(sdk, mixed):
    assert ids(sdk.list_jobs(search="FAILED-000001", limit=100)) == [
        f"failed-00000{i}" for i in range(19, 9, -1)]
    names = {j.state.name for j in sdk.list_jobs(search="seed", limit=1000)}
    assert names == {"seeded"}
    assert len(sdk.list_jobs("other", search="b", limit=1000)) == 20


def test_bad_list_arguments(sdk):
    with pytest.raises(InvalidOptions, match="unknown status 'done'"):
        sdk.list_jobs(status="done")
    with pytest.raises(InvalidOptions, match="limit"):
        sdk.list_jobs(limit=0)
    with pytest.raises(InvalidOptions, match="offset"):
        sdk.list_jobs(offset=-1)


def test_expired_records_are_left_out(sdk, r, prefix, mixed):
    r.delete(Keys(prefix).queue("default").job("completed-0000039"))
    assert "completed-0000039" not in ids(sdk.list_jobs("default", "completed", limit=5))


@on_both()
def test_stats_queues_and_info(sdk, r, prefix, mixed):
    stats = sdk.get_queue_stats("default")
    assert (stats.waiting, stats.delayed, stats.completed, stats.failed) == (30, 1, 40, 0)
    assert stats.total == 71
    assert stats.to_dict()["total"] == 71
    dead_letter(r, prefix, {"id": "x", "queue": "default", "name": "a", "job": "{}"})
    assert sdk.get_queue_stats("default").dlq == 1
    assert sdk.get_queues() == ["default", "other"]
    info = {i.name: i for i in sdk.get_queues_info()}
    assert info["other"].stats.failed == 25
    assert (info["default"].stats.dlq, info["other"].stats.dlq) == (1, 0)  # per queue
    assert not info["other"].paused
    assert info["other"].to_dict()["stats"]["waiting"] == 20


async def test_pause_queue_is_the_task_managers_flag(sdk, make_tm):
    tm: TaskManager = make_tm()
    assert not sdk.is_queue_paused("default")
    sdk.pause_queue("default")
    assert tm.is_queue_paused("default")
    assert await sdk.ais_queue_paused("default")
    assert {i.name: i.paused for i in sdk.get_queues_info()} == {}  # registry is separate
    tm.resume_queue("default")
    assert not sdk.is_queue_paused("default")
    tm.pause_queue("q2")
    assert sdk.is_queue_paused("q2")
    await sdk.aresume_queue("q2")
    assert not tm.is_queue_paused("q2")


def brute_search(r, prefix, queues, needle):
    out = []
    for job_id in all_sorted(r, prefix, queues):
        name = next(r.hget(Keys(prefix).queue(q).job(job_id), "name") for q in queues
                    if r.exists(Keys(prefix).queue(q).job(job_id)))
        if needle in job_id.lower() or needle in name.lower():
            out.append(job_id)
    return out


@pytest.mark.parametrize(("needle", "queue"), [("d", None), ("SEED", None), ("0000001", None),
                                                ("e", "default"), ("zzz", None)])
async def test_search_walks_older_windows_and_finds_exactly_the_matches(
        sdk, r, prefix, mixed, monkeypatch, needle, queue):
    """A small window: the search goes on from ``older`` until it has seen every job; the
    pages, joined, are exactly the brute-force matches in listing order (ties included)."""
    monkeypatch.setattr(listings, "SEARCH_WINDOW", 35)
    queues = [queue] if queue else mixed
    expected = brute_search(r, prefix, queues, needle.lower())
    got, before, steps = [], None, 0
    while True:
        offset = 0
        while True:  # the pages of one window, 4 at a time
            found = (sdk.search_jobs(needle, queue, limit=4, offset=offset, before=before)
                     if steps % 2 == 0 else
                     await sdk.asearch_jobs(needle, queue, limit=4, offset=offset,
                                            before=before))
            got += ids(found.jobs)
            if len(found.jobs) < 4:
                break
            offset += 4
        steps += 1
        if found.older is None:
            break
        assert before is None or found.older < before  # always further back
        before = found.older
    assert got == expected
    assert steps > 1  # the window really ran out at least once


def test_search_is_bounded_by_its_window(sdk, mixed, monkeypatch):
    monkeypatch.setattr(listings, "SEARCH_WINDOW", 10)
    found = sdk.search_jobs("zzz")
    assert found.jobs == []
    assert found.older is not None
    # list_jobs(search=) is the first window only
    assert sdk.list_jobs(search="completed-0000000") == []
    monkeypatch.setattr(listings, "SEARCH_WINDOW", 1000)
    assert ids(sdk.list_jobs(search="completed-0000000")) == ["completed-0000000"]
    assert sdk.search_jobs("zzz").older is None  # every job looked at


def test_bad_search_arguments(sdk):
    with pytest.raises(InvalidOptions, match="search must be a non-empty str"):
        sdk.search_jobs("")
    with pytest.raises(InvalidOptions, match="before must be a score"):
        sdk.search_jobs("x", before="yesterday")  # type: ignore[arg-type]
