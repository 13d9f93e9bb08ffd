"""Large jobs cost the admin pages nothing: listings and their live refreshes read only
what their rows show, the job page shows a bounded preview of large values (cut in
Redis), and a staff-only download gives a value whole, byte for byte."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.urls import reverse

from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk
from django_remq.core.sdk.bounded import PREVIEW_CAP, ROW_CAP
from django_remq.core.store.keys import Keys
from django_remq.errors import InvalidOptions

from .admin_support import boom, make_jobs, remq_at

pytestmark = pytest.mark.redis

MB = 1024 * 1024
#: 20 MB of data, part of it not ASCII (2 bytes a character), as a record holds it
BIG_DATA = {"rows": ["é" * 1000, "x" * (20 * MB)], "note": "tail"}


def deny(request: Any) -> bool:
    return False


def peak_of(call: Callable[[], Any]) -> tuple[Any, int]:
    """``call()``'s result and the most memory Python held over what it held before."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = call()
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.fixture
def big(redis_url: str, prefix: str) -> Iterator[dict[str, str]]:
    """The jobs of make_jobs, and a job with 20 MB of data and a 512 KB result, written
    with the limit off (a record from before the limit, or another producer)."""
    with remq_at(redis_url, prefix):
        ids = make_jobs(redis_url, prefix)
        tm = TaskManager.init(db=redis_url, prefix=prefix, max_payload_bytes=None)
        ids["big"] = tm.emit("import-rows", data=BIG_DATA)
        tm.conn.sync.hset(tm.keys.queue("default").job(ids["big"]), "result",
                          json.dumps({"report": "é" * 1000 + "r" * (MB // 2)},
                                     ensure_ascii=False))
        tm.conn.close()
        yield ids


def raw(redis_url: str, prefix: str, job_id: str, name: str) -> bytes:
    """The value as Redis holds it (a client that does not decode)."""
    client = redis.Redis.from_url(redis_url)
    try:
        value = client.hget(Keys(prefix).queue("default").job(job_id), name)
    finally:
        client.close()
    assert isinstance(value, bytes)
    return value


def test_the_jobs_list_and_its_refresh_stay_small_with_a_20_mb_job(admin_client, big):
    jobs = reverse("remq_admin:jobs")
    for url in (jobs, f"{jobs}?queue=default", f"{jobs}?queue=default&status=waiting",
                f"{jobs}?q=import", reverse("remq_admin:live") + "?view=jobs&queue=default"):
        admin_client.get(url)  # warm: scripts loaded, templates compiled
        response, peak = peak_of(lambda u=url: admin_client.get(u))
        assert response.status_code == 200, url
        assert big["big"].encode() in response.content, url  # the big job is listed
        assert len(response.content) < 100_000, (url, len(response.content))
        assert peak < 4 * MB, (url, peak)  # a whole value would be 20 MB, twice over


def test_the_sdk_rows_are_the_listing_without_data_or_result(big, redis_url, prefix):
    sdk = Sdk(redis_url, prefix=prefix)
    for status in ("completed", "failed", "delayed", "paused", "cancelled"):
        full, rows = sdk.list_jobs("default", status), sdk.list_job_rows("default", status)
        assert [(j.id, j.status, j.state.name, j.timestamp, j.errors, j.progress)
                for j in rows] == [(j.id, j.status, j.state.name, j.timestamp, j.errors,
                                    j.progress) for j in full]
        assert len(rows) == 1
        assert rows[0].state.data is None
        assert rows[0].result is None
    rows = sdk.list_job_rows("default", "waiting")
    assert [j.id for j in rows] == [big["big"], big["waiting"]]
    every = sdk.list_job_rows(None, limit=3, offset=1)
    assert [j.id for j in every] == [j.id for j in sdk.list_jobs(None, "completed", limit=3)] \
        or len(every) == 3
    found = sdk.search_job_rows(big["big"][:12])
    assert [j.id for j in found.jobs] == [big["big"]]
    assert found.jobs[0].state.data is None


def test_the_job_page_shows_a_bounded_preview_and_links_the_downloads(admin_client, big):
    url = reverse("remq_admin:job", args=["default", big["big"]])
    admin_client.get(url)
    response, peak = peak_of(lambda: admin_client.get(url))
    assert response.status_code == 200
    html = response.content.decode()
    assert len(html) < 3 * PREVIEW_CAP, len(html)  # the result's preview, and the rest
    assert peak < 8 * MB, peak
    assert "Data: 20.0\xa0MB, too large to show here. <a" in html  # not read at all
    assert "Result: 514.0\xa0KB, too large to show here; the first 64.0\xa0KB above" in html
    assert "{&quot;report&quot;: &quot;" + "é" * 1000 in html  # the result's start, escaped
    for name in ("data", "result"):
        assert reverse("remq_admin:download", args=["default", name, big["big"]]) in html
    live = admin_client.get(reverse("remq_admin:live") + f"?view=job&queue=default&job_id="
                            f"{big['big']}")
    assert live.status_code == 200
    assert len(live.content) < 4 * PREVIEW_CAP
    assert "Download the whole" in live.json()["html"]
    small = admin_client.get(reverse("remq_admin:job", args=["default", big["completed"]]))
    assert b"ada@example.com" in small.content  # small values shown whole, no link
    assert b"Download the whole" not in small.content


def test_the_download_is_the_value_byte_for_byte(admin_client, big, redis_url, prefix):
    for name in ("data", "result"):
        url = reverse("remq_admin:download", args=["default", name, big["big"]])
        response = admin_client.get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert response["Content-Disposition"] == \
            f'attachment; filename="{big["big"]}-{name}.json"'
        assert response.content == raw(redis_url, prefix, big["big"], name)
    data = admin_client.get(reverse("remq_admin:download", args=["default", "data", big["big"]]))
    assert json.loads(data.content) == BIG_DATA
    assert len(data.content) > 20 * MB


def test_the_download_refuses_what_it_should(admin_client, client, django_user_model, big,
                                             redis_url, prefix):
    url = reverse("remq_admin:download", args=["default", "data", big["big"]])
    assert admin_client.post(url).status_code == 405
    for args in (["default", "options", big["big"]], ["default", "data", "no-such-job"],
                 ["no such queue!", "data", big["big"]],
                 ["default", "result", big["waiting"]]):  # a job without a result
        assert admin_client.get(reverse("remq_admin:download", args=args)).status_code == 404
    assert client.get(url).status_code == 302  # anonymous: to the login page
    client.force_login(django_user_model.objects.create_user("plain", password="pw"))
    response = client.get(url)
    assert response.status_code == 302
    assert b"xxxx" not in response.content
    with remq_at(redis_url, prefix, ADMIN_PERMISSION="tests.test_admin_large_payloads.deny"):
        assert admin_client.get(url).status_code == 403


def test_cut_progress_and_errors_still_show_the_percent_and_the_latest_error(
        admin_client, r, redis_url, prefix):
    with remq_at(redis_url, prefix):
        tm = TaskManager.init(db=redis_url, prefix=prefix)
        tm.register_handler("report", boom)
        job_id = tm.emit("report", data={"n": 1})
        asyncio.run(tm.run(burst=True))  # failed; then a long history, as if retried 20 times
        key = tm.keys.queue("default").job(job_id)
        errors = [{"message": f"attempt {i} failed: " + "m" * 3000, "type": "RuntimeError",
                   "traceback": "t" * 8000, "attempt": i, "timestamp": 1_700_000_000_000 + i}
                  for i in range(1, 21)]
        r.hset(key, mapping={
            "progress": json.dumps({"data": "p" * (5 * ROW_CAP), "progress": 42}),
            "errors": json.dumps(errors, separators=(",", ":"))})
        tm.conn.close()
        sdk = Sdk(redis_url, prefix=prefix)
        [row] = sdk.list_job_rows("default")
        assert row.progress == {"progress": 42.0}
        assert [e.attempt for e in row.errors] == [20]
        assert row.errors[0].message.startswith("attempt 20 failed: ")
        preview = sdk.get_job_preview(job_id, "default")
        assert preview is not None
        assert set(preview.cuts) == {"progress", "errors"}
        assert preview.cuts["errors"].size == len(json.dumps(errors, separators=(",", ":")))
        shown = [e.attempt for e in preview.job.errors]
        assert shown == list(range(21 - len(shown), 21))
        assert 2 <= len(shown) < 10
        page = admin_client.get(reverse("remq_admin:job", args=["default", job_id]))
        html = page.content.decode()
        assert f"The latest {len(shown)} errors of a list of" in html
        assert "attempt 20 failed" in html
        assert "attempt 1 failed" not in html
        assert 'aria-valuenow="42"' in html
        listing = admin_client.get(reverse("remq_admin:jobs") + "?queue=default").content
        assert b'aria-valuenow="42"' in listing
        assert b"attempt 20 failed" in listing
        assert len(listing) < 100_000
        many = json.dumps(errors * 20)  # over what a row reads at all
        r.hset(key, "errors", many)
        [row] = sdk.list_job_rows("default")
        assert row.errors[0].message.startswith(f"(errors of {len(many):,} bytes")
        assert "too large to show: open the job to download them" in row.errors[0].message


def test_a_preview_cuts_between_characters(r, redis_url, prefix):
    tm = TaskManager.init(db=redis_url, prefix=prefix, max_payload_bytes=None)
    for text in ("é" * 40_000, "a" + "é" * 40_000, "\U0001f600" * 20_000, "ab" + "€" * 30_000):
        job_id = tm.emit("anything", data=text)
        preview = Sdk(redis_url, prefix=prefix).get_job_preview(job_id, "default", cap=10_001)
        assert preview is not None
        cut = preview.cuts["data"]
        stored = json.dumps(text, ensure_ascii=False)
        assert cut.size == len(stored.encode())
        assert stored.startswith(cut.part)
        assert 10_001 - 4 < len(cut.part.encode()) <= 10_001
    tm.conn.close()


def test_bad_arguments_are_refused(redis_url, prefix, r):
    sdk = Sdk(redis_url, prefix=prefix)
    with pytest.raises(InvalidOptions, match="one of data, result, progress, errors"):
        sdk.get_job_value("x", "default", "options")
    with pytest.raises(InvalidOptions, match="cap must be an int >= 1"):
        sdk.get_job_preview("x", "default", cap=0)
    assert sdk.get_job_preview("missing", "default") is None
    assert sdk.get_job_value("missing", "default", "data") is None
    r.set(sdk.keys.queue("default").job("odd"), "not a hash")
    assert sdk.get_job_value("odd", "default", "data") is None
