"""Admin pages at scale: render time of every page with 100,000 jobs in one queue.

    python bench/admin.py [--url redis://127.0.0.1:6379/12] [--jobs 100000] [--runs 30]
    python bench/admin.py --large 20 [--runs 10]     # one 20 MB job among small ones

Seeds ``--jobs`` finished jobs (90% completed, 10% failed, record + status index, as the
engine writes them; and the per-minute trend counters of three full hours and the totals,
as finish.lua keeps them, so the charts have a bar a minute) plus a few live ones in other
queues, then requests each page (and the Prometheus scrape, with the ``metrics`` extra) through
Django's full stack (middleware, ``admin_view``, templates) as a logged-in superuser and
prints the best, median and worst render time in ms (target: under 50 ms), next to two
floors (a Redis PING and Django's own admin index): on a shared host compare against
them. Deletes its keys afterwards. Use a database nobody else uses.

``--large MB``: 200 finished jobs and one waiting job with MB megabytes of data (written
with the payload limit off, as a record from before it); prints, for the pages that list
or show it, the median time, the response's size, the peak of Python's memory during
one request (tracemalloc) and the growth of the process's peak RSS over all requests.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import statistics
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import django
import redis
from django.conf import settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHUNK = 10_000
QUEUE = "bench"
#: the metrics extra installed (and a version of the package that has the view): its
#: scrape is measured too
HAS_METRICS = all(importlib.util.find_spec(m) is not None
                  for m in ("prometheus_client", "django_remq.metrics"))


def configure(url: str, prefix: str) -> None:
    settings.configure(
        SECRET_KEY="bench-only", DEBUG=False, ALLOWED_HOSTS=["*"], USE_TZ=True,
        ROOT_URLCONF="bench_admin_urls",
        INSTALLED_APPS=["django.contrib.admin", "django.contrib.auth",
                        "django.contrib.contenttypes", "django.contrib.sessions",
                        "django.contrib.messages", "django.contrib.staticfiles", "django_remq"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                    "django.middleware.csrf.CsrfViewMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware",
                    "django.contrib.messages.middleware.MessageMiddleware"],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                    "APP_DIRS": True, "OPTIONS": {"context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages"]}}],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        STATIC_URL="/static/", DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        REMQ={"REDIS_URL": url, "PREFIX": prefix, "PROCESSOR": {"dlq": {}}},
    )
    django.setup()
    import types

    from django.contrib import admin
    from django.urls import include, path

    urls = types.ModuleType("bench_admin_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("admin/remq/", include("django_remq.admin_views.urls")),
        *([path("remq/metrics/", include("django_remq.metrics"))] if HAS_METRICS else []),
        path("admin/", admin.site.urls)]
    sys.modules["bench_admin_urls"] = urls


def seed(r: redis.Redis, prefix: str, n: int) -> str:
    """``n`` finished jobs in QUEUE; returns the id of one failed job."""
    from django_remq.core.store.keys import Keys

    keys = Keys(prefix)
    qk = keys.queue(QUEUE)
    start = int(time.time() * 1000) - n
    error = json.dumps([{"message": "boom", "type": "RuntimeError", "attempt": 1,
                         "traceback": "Traceback (most recent call last):\n  ...\n"
                                      "RuntimeError: boom",
                         "timestamp": start}])
    r.sadd(keys.queues, QUEUE)
    failed_id = ""
    for lo in range(0, n, CHUNK):
        pipe = r.pipeline(transaction=False)
        by_status: dict[str, dict[str, int]] = {"completed": {}, "failed": {}}
        for i in range(lo, min(lo + CHUNK, n)):
            at, status = start + i, ("failed" if i % 10 == 0 else "completed")
            job_id = uuid.uuid4().hex
            record = {"id": job_id, "name": "send-report", "queue": QUEUE, "status": status,
                      "data": json.dumps({"user_id": i, "report": "weekly"}),
                      "options": "{}", "timestamp": at - 5, "last_run": at - 3,
                      "finished_at": at, "retried_attempts": 0}
            if status == "failed":
                record["errors"] = error
                failed_id = job_id
            else:
                record["result"] = json.dumps({"sent": True})
            pipe.hset(qk.job(job_id), mapping=record)
            by_status[status][job_id] = at
        for status, scores in by_status.items():
            pipe.zadd(qk.status(status), scores)
        pipe.execute()
    return failed_id


def seed_trends(r: redis.Redis, prefix: str, queue: str, minutes: int = 180) -> None:
    """finish.lua's counters for ``queue``: every minute of the last ``minutes`` busy (so
    the chart draws a bar a minute), and the totals (fields as finish.lua writes them)."""
    from django_remq.core.sdk.metrics import HOUR, MINUTE, TREND_HOURS
    from django_remq.core.store.keys import Keys

    qk = Keys(prefix).queue(queue)
    now = int(time.time() * 1000) // MINUTE
    pipe = r.pipeline(transaction=False)
    for m in range(now - minutes + 1, now + 1):
        hour, field = m * MINUTE // HOUR, f"{m % 60}:"
        done, failed = 50 + m % 40, m % 7
        pipe.hset(qk.trend(hour), mapping={f"{field}completed": done, f"{field}failed": failed,
                                           f"{field}h3": done, f"{field}h6": failed,
                                           f"{field}run_ms": done * 20 + failed * 200})
        pipe.hincrby(qk.totals, "completed", done)
        pipe.hincrby(qk.totals, "failed", failed)
        pipe.hincrby(qk.totals, "h3", done)
        pipe.hincrby(qk.totals, "h6", failed)
        pipe.hincrby(qk.totals, "run_ms", done * 20 + failed * 200)
        pipe.pexpireat(qk.trend(hour), (hour + 1 + TREND_HOURS) * HOUR)
    pipe.execute()


def large(client: Any, r: redis.Redis, url: str, prefix: str, mb: int,
          runs: int) -> None:
    """The pages that list or show one job of ``mb`` MB (see the module's docstring)."""
    from django.urls import NoReverseMatch, reverse

    from django_remq.core import TaskManager

    t0 = time.perf_counter()
    seed(r, prefix, 200)
    try:  # the limit off: a record from before it (older versions have no limit)
        tm = TaskManager.init(db=url, prefix=prefix, max_payload_bytes=None)
    except TypeError:
        tm = TaskManager.init(db=url, prefix=prefix)
    big = tm.emit("import-rows", queue=QUEUE, data={"rows": "x" * (mb * 1024 * 1024)})
    tm.conn.close()
    print(f"seeded 200 finished jobs and one of {mb} MB in {QUEUE!r} in "
          f"{time.perf_counter() - t0:.1f} s")
    jobs = reverse("remq_admin:jobs")
    pages = [("jobs (all queues, page 1)", jobs), (f"jobs ({QUEUE}, page 1)",
                                                   f"{jobs}?queue={QUEUE}"),
             ("live JSON (jobs page, every 2 s)",
              reverse("remq_admin:live") + f"?view=jobs&queue={QUEUE}"),
             ("job (the large one)", reverse("remq_admin:job", args=[QUEUE, big]))]
    with contextlib.suppress(NoReverseMatch):  # not in older versions
        pages.append(("download (its data, whole)",
                      reverse("remq_admin:download", args=[QUEUE, "data", big])))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{'page':<36} {'median ms':>10} {'bytes':>12} {'peak MB':>9}  ({runs} renders; "
          f"peak RSS before: {rss0 / 1024:.0f} MB)")
    for name, page in pages:
        if name.startswith("download"):  # the one page meant to move the whole value
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(f"(peak RSS so far: {rss / 1024:.0f} MB, +{(rss - rss0) / 1024:.0f} MB)")
        client.get(page)  # warm
        times, size = [], 0
        for _ in range(runs):
            t = time.perf_counter()
            response = client.get(page)
            times.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, page
            size = len(response.content)
        tracemalloc.start()
        client.get(page)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"{name:<36} {statistics.median(times):>10.1f} {size:>12,} "
              f"{peak / 1024 / 1024:>9.1f}")
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS after: {rss1 / 1024:.0f} MB (+{(rss1 - rss0) / 1024:.0f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="redis://127.0.0.1:6379/12")
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--large", type=int, default=0, metavar="MB",
                    help="one job of MB megabytes among 200 small ones (see above)")
    opts = ap.parse_args()
    prefix = f"bench-admin-{uuid.uuid4().hex[:6]}"
    os.environ.pop("REMQ_REDIS_URL", None)
    configure(opts.url, prefix)

    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from django_remq.core import TaskManager

    call_command("migrate", verbosity=0)
    client = Client()
    client.force_login(User.objects.create_superuser("bench", "b@example.com", "x"))
    r = redis.Redis.from_url(opts.url, decode_responses=True)
    if opts.large:
        try:
            large(client, r, opts.url, prefix, opts.large, opts.runs)
        finally:
            for key in r.scan_iter(f"{prefix}:*", count=10_000):
                r.unlink(key)
            r.close()
        return
    try:
        t0 = time.perf_counter()
        failed_id = seed(r, prefix, opts.jobs)
        seed_trends(r, prefix, QUEUE)
        tm = TaskManager.init(db=opts.url, prefix=prefix)
        for q in ("default", "emails", "reports"):
            for k in range(20):
                tm.emit("send-email", queue=q, data={"n": k})
        tm.conn.close()
        print(f"seeded {opts.jobs:,} finished jobs in {QUEUE!r} (+60 waiting in 3 queues) "
              f"in {time.perf_counter() - t0:.1f} s")
        jobs = reverse("remq_admin:jobs")
        pages = [
            ("queues", reverse("remq_admin:queues")),
            ("jobs (all queues, page 1)", jobs),
            (f"jobs ({QUEUE}, page 1)", f"{jobs}?queue={QUEUE}"),
            (f"jobs ({QUEUE}, completed, page 1000)",
             f"{jobs}?queue={QUEUE}&status=completed&page=1000"),
            (f"jobs ({QUEUE}, all, page 1000)", f"{jobs}?queue={QUEUE}&page=1000"),
            ("jobs (all queues, page 1000)", f"{jobs}?page=1000"),
            ("jobs search (no match: a full window)", f"{jobs}?q=zzz"),
            ("jobs search (event name, page 1)", f"{jobs}?q=send-rep"),
            ("job (failed, with traceback)", reverse("remq_admin:job", args=[QUEUE, failed_id])),
            ("dead letters", reverse("remq_admin:dead_letters")),
            ("workers", reverse("remq_admin:workers")),
            ("live JSON (jobs page)", reverse("remq_admin:live") + f"?view=jobs&queue={QUEUE}"),
            ("live JSON (queues page)", reverse("remq_admin:live") + "?view=queues"),
        ]
        if HAS_METRICS:
            pages.append(("metrics (Prometheus scrape)", "/remq/metrics/"))
        print(f"{'page':<44} {'min ms':>8} {'median ms':>10} {'max ms':>8}  "
              f"({opts.runs} renders)")
        # floors, for comparing runs on a shared host: a Redis round trip, and Django's own
        # admin index (same stack and base template, no Redis)
        times = []
        for _ in range(200):
            t = time.perf_counter()
            r.ping()
            times.append((time.perf_counter() - t) * 1000)
        print(f"{'(floor) Redis PING round trip':<44} {min(times):>8.2f} "
              f"{statistics.median(times):>10.2f} {max(times):>8.2f}")
        pages.insert(0, ("(floor) Django admin index, no Redis", reverse("admin:index")))
        for name, url in pages:
            assert client.get(url).status_code == 200, url  # warm
            times = []
            for _ in range(opts.runs):
                t = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200, url
            print(f"{name:<44} {min(times):>8.1f} {statistics.median(times):>10.1f} "
                  f"{max(times):>8.1f}")
    finally:
        leftover = list(r.scan_iter(f"{prefix}:*", count=10_000))
        for lo in range(0, len(leftover), CHUNK):
            r.unlink(*leftover[lo:lo + CHUNK])
        r.close()


if __name__ == "__main__":
    main()
