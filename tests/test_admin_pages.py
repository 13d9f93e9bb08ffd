"""Admin pages with Django's test client: who may see them, what they show, the
live endpoint, the admin-index section and the Redis-down page."""

from __future__ import annotations

import json
import time

import pytest
from django.core.management import call_command
from django.urls import reverse

from django_remq.core import TaskManager
from django_remq.core.sdk import Sdk

from .admin_support import make_jobs, remq_at, worker_thread
from .sdk_seed import seed_finished

pytestmark = pytest.mark.redis

PAGES = ["remq_admin:queues", "remq_admin:jobs", "remq_admin:dead_letters",
         "remq_admin:workers"]


@pytest.fixture
def remq(redis_url, prefix):
    with remq_at(redis_url, prefix):
        yield


@pytest.fixture
def jobs(remq, redis_url, prefix):
    return make_jobs(redis_url, prefix)


def every_url(jobs: dict[str, str]) -> list[str]:
    return [*(reverse(name) for name in PAGES),
            reverse("remq_admin:job", args=["default", jobs["failed"]]),
            reverse("remq_admin:live") + "?view=queues"]


def deny(request):
    return False


def test_every_page_renders_for_staff(admin_client, jobs):
    for url in every_url(jobs):
        response = admin_client.get(url)
        assert response.status_code == 200, url


def test_pages_are_refused_to_anonymous_and_non_staff(client, django_user_model, jobs):
    plain = django_user_model.objects.create_user("plain", password="pw")
    for who in ("anonymous", "plain"):
        if who == "plain":
            client.force_login(plain)
        for url in every_url(jobs):
            response = client.get(url)
            assert response.status_code == 302, (who, url)
            assert response["Location"].startswith(reverse("admin:login")), (who, url)
            assert jobs["failed"].encode() not in response.content


def test_admin_permission_callable_refuses_staff(admin_client, jobs, redis_url, prefix):
    with remq_at(redis_url, prefix, ADMIN_PERMISSION="tests.test_admin_pages.deny"):
        for url in every_url(jobs):
            assert admin_client.get(url).status_code == 403, url
        assert b"Task queue" not in admin_client.get(reverse("admin:index")).content


def test_admin_permission_is_checked_at_startup(redis_url, prefix):
    from django.core.management.base import SystemCheckError

    with remq_at(redis_url, prefix, ADMIN_PERMISSION="tests.nowhere.allow"), \
            pytest.raises(SystemCheckError, match=r"remq.E010.*ADMIN_PERMISSION.*does not import"):
        call_command("check")


def test_admin_permission_must_be_callable(redis_url, prefix):
    from django_remq.conf import problems

    found = problems({"ADMIN_PERMISSION": "tests.test_admin_pages.PAGES"})
    assert [p.id for p in found] == ["remq.E010"]
    assert "is not callable" in found[0].msg
    assert "request" in found[0].hint
    assert problems({"ADMIN_PERMISSION": 3})[0].id == "remq.E003"  # wrong type


def test_admin_index_has_a_task_queue_section(admin_client, remq):
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "Task queue" in page
    for name in PAGES:
        assert f'href="{reverse(name)}"' in page


def test_queues_page_shows_counts_paused_flag_and_throughput(admin_client, jobs, redis_url,
                                                            prefix):
    Sdk(redis_url, prefix=prefix).pause_queue("default")
    page = admin_client.get(reverse("remq_admin:queues")).content.decode()
    row = page[page.index('data-queue="default"'):]
    row = row[:row.index("</tr>")]
    assert "paused</span>" in row
    assert "Resume</button>" in row
    assert "status=failed\">1</a>" in row  # the failed count links to the failed jobs
    # finished in the last minute: completed 1, failed 1
    assert '<span class="remq-ok" title="completed">1</span> / <span class="remq-bad"' in row
    cards = page[page.index("remq-cards"):page.index("</div>", page.index("remq-cards"))]
    assert "Dead letters" in cards


def test_job_page_shows_everything(admin_client, jobs):
    page = admin_client.get(reverse("remq_admin:job", args=["default", jobs["failed"]]))
    text = page.content.decode()
    assert "charge-card" in text
    assert "&quot;amount&quot;: 42" in text  # data as pretty JSON
    assert "RuntimeError" in text
    assert "boom in charge-card" in text
    assert "Traceback (most recent call last)" in text
    assert 'data-action="retry"' in text
    assert 'data-action="delete"' in text
    assert 'data-action="pause"' not in text  # not valid for a failed job
    done = admin_client.get(reverse("remq_admin:job", args=["default", jobs["completed"]]))
    text = done.content.decode()
    assert "working" in text  # the log line
    assert "&quot;done&quot;: true" in text  # the result
    assert 'aria-valuenow="100"' in text  # the progress bar
    delayed = admin_client.get(reverse("remq_admin:job", args=["default", jobs["delayed"]]))
    assert "Runs at" in delayed.content.decode()


def test_unknown_job_is_a_404(admin_client, remq):
    assert admin_client.get(reverse("remq_admin:job", args=["default", "nope"])).status_code == 404


def test_jobs_page_newest_first_filters_and_search(admin_client, jobs, redis_url, prefix):
    url = reverse("remq_admin:jobs")
    text = admin_client.get(url).content.decode()
    ids = [jobs[s] for s in ("cancelled", "paused", "waiting")]
    positions = [text.index(f'data-job="{i}"') for i in ids]
    assert positions == sorted(positions)  # newest first
    failed = admin_client.get(url, {"status": "failed"}).content.decode()
    assert f'data-job="{jobs["failed"]}"' in failed
    assert f'data-job="{jobs["completed"]}"' not in failed
    by_event = admin_client.get(url, {"q": "charge"}).content.decode()
    assert f'data-job="{jobs["failed"]}"' in by_event
    assert by_event.count('data-job="') == 1
    by_id = admin_client.get(url, {"q": jobs["waiting"][:8]}).content.decode()
    assert f'data-job="{jobs["waiting"]}"' in by_id
    none = admin_client.get(url, {"q": "no-such-thing"}).content.decode()
    assert "No job id or event name contains" in none


def test_jobs_page_paginates_from_the_indexes(admin_client, remq, r, prefix):
    seed_finished(r, prefix, "bulk", 120, "completed")
    url = reverse("remq_admin:jobs")
    first = admin_client.get(url, {"queue": "bulk"}).content.decode()
    assert first.count('data-job="') == 50
    assert 'data-job="completed-0000119"' in first  # newest first
    assert "120 jobs" in first
    last = admin_client.get(url, {"queue": "bulk", "page": "3"}).content.decode()
    assert last.count('data-job="') == 20
    assert 'data-job="completed-0000000"' in last
    assert 'rel="next"' not in last
    odd = admin_client.get(url, {"queue": "bulk", "page": "x"}).content.decode()
    assert odd.count('data-job="') == 50


def test_bad_filters_are_dropped_with_a_message(admin_client, jobs):
    response = admin_client.get(reverse("remq_admin:jobs"), {"status": "nope", "queue": "a:b"})
    assert response.status_code == 200
    assert "Filter ignored" in response.content.decode()


def test_dead_letters_page_lists_reason_and_error(admin_client, jobs):
    text = admin_client.get(reverse("remq_admin:dead_letters")).content.decode()
    assert jobs["failed"][:10] in text
    assert "no_retries" in text
    assert "boom in charge-card" in text


def test_workers_page_shows_live_workers_and_cron(admin_client, remq, redis_url, prefix):
    tm = TaskManager.init(db=redis_url, prefix=prefix, concurrency=3)
    tm.register_handler("nightly-report", lambda t, c: None,
                        options={"repeat": {"pattern": "0 3 * * *"}})
    sdk = Sdk(redis_url, prefix=prefix)
    with worker_thread(tm):
        deadline = time.monotonic() + 20
        while not (sdk.get_workers() and sdk.list_cron()) and time.monotonic() < deadline:
            time.sleep(0.05)
        text = admin_client.get(reverse("remq_admin:workers")).content.decode()
    import os

    assert f'<td class="num">{os.getpid()}</td>' in text
    assert "0 / 3" in text  # idle, three slots
    assert "nightly-report" in text
    assert "Runs so far" in text


def test_live_endpoint_returns_fragments_and_counts(admin_client, jobs):
    url = reverse("remq_admin:live")
    data = admin_client.get(url, {"view": "jobs", "status": "failed"}).json()
    assert data["summary"]["failed"] == 1
    assert jobs["failed"] in data["html"]
    assert jobs["waiting"] not in data["html"]
    one = admin_client.get(url, {"view": "job", "queue": "default", "job_id": jobs["failed"]})
    assert one.json()["summary"]["status"] == "failed"
    assert admin_client.get(url, {"view": "nope"}).status_code == 400
    gone = admin_client.get(url, {"view": "job", "queue": "default", "job_id": "nope"})
    assert gone.status_code == 404
    assert "no job" in gone.json()["error"]


def test_redis_down_is_an_error_page_not_a_500(admin_client, prefix):
    with remq_at("redis://127.0.0.1:1/0", prefix):
        for name in PAGES:
            response = admin_client.get(reverse(name))
            assert response.status_code == 503, name
            text = response.content.decode()
            assert "did not answer" in text
            assert "redis://127.0.0.1:1/0" in text
            assert 'id="site-name"' in text  # the admin's own header: its look
        live = admin_client.get(reverse("remq_admin:live"), {"view": "queues"})
        assert live.status_code == 503
        assert "not reachable" in json.loads(live.content)["error"]
        post = admin_client.post(reverse("remq_admin:queue_action", args=["default", "pause"]))
        assert post.status_code == 503


def test_no_section_when_the_pages_are_not_mounted(admin_client, remq, settings):
    settings.ROOT_URLCONF = "tests.urls_admin_only"
    page = admin_client.get("/admin/").content.decode()
    assert "Task queue" not in page
    assert "Authentication and Authorization" in page  # the rest of the index is intact


def test_search_goes_on_to_older_jobs_by_a_link(admin_client, remq, r, prefix, monkeypatch):
    """Each search looks at a bounded window; "Search older jobs" carries on from where it
    stopped, until the oldest job was looked at."""
    import html
    import re

    from django_remq.core.sdk import listings

    monkeypatch.setattr(listings, "SEARCH_WINDOW", 40)
    seed_finished(r, prefix, "bulk", 100, "completed")  # ids completed-0000000..99
    url = reverse("remq_admin:jobs")
    first = admin_client.get(url, {"q": "completed-000000"}).content.decode()
    assert 'data-job="' not in first  # 00..09 are the oldest: outside the newest 40
    assert "among the newest 40 jobs of each queue" in first
    link = html.unescape(re.search(r'href="([^"]+)" class="remq-older-link"', first).group(1))
    second = admin_client.get(link).content.decode()  # jobs 59..20: still none
    assert 'data-job="' not in second
    link = html.unescape(re.search(r'href="([^"]+)" class="remq-older-link"', second).group(1))
    third = admin_client.get(link).content.decode()
    assert re.findall(r'data-job="([^"]+)"', third) == [f"completed-{i:07d}"
                                                        for i in range(9, -1, -1)]
    assert "remq-older-link" not in third  # the oldest job was looked at
    odd = admin_client.get(url, {"q": "completed", "before": "soon"})
    assert odd.status_code == 200  # a bad cursor starts from the newest


def test_pages_offer_the_gateway_socket_only_when_it_runs(admin_client, remq, settings,
                                                          redis_url, prefix):
    """``data-remq-socket`` (live.js then opens the broadcast socket) needs both
    ``REMQ["GATEWAY"]`` and a channel layer: without either, workers send no events."""
    url = reverse("remq_admin:queues")
    assert "data-remq-socket" not in admin_client.get(url).content.decode()
    layer = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.CHANNEL_LAYERS = layer
    assert "data-remq-socket" not in admin_client.get(url).content.decode()  # no GATEWAY
    with remq_at(redis_url, prefix, GATEWAY={}):
        for page in (url, reverse("remq_admin:jobs")):
            assert 'data-remq-socket="/ws/remq/"' in admin_client.get(page).content.decode()
        del settings.CHANNEL_LAYERS
        assert "data-remq-socket" not in admin_client.get(url).content.decode()
