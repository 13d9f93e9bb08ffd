"""Prometheus metrics: :class:`RemqCollector` and a view that serves it (extra ``metrics``).

Every figure is read from Redis when scraped, so any number of web processes agree
and none keeps state: queue depth per status from the status indexes, jobs finished
and run times from the counters the atomic finish step keeps (``finish.lua``), workers
from their heartbeats. A scrape costs five round trips whatever the number of queues.

``path("remq/metrics/", include("django_remq.metrics"))`` serves it to staff sessions
(and ``REMQ["ADMIN_PERMISSION"]``, as the admin pages ask) and, with
``REMQ["METRICS"] = {"TOKEN": ...}``, to a scraper sending ``Authorization: Bearer
<token>``. See docs/metrics.md.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

try:
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.metrics_core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
except ImportError as exc:  # the extra is not installed
    raise ImportError(f"django_remq.metrics needs prometheus_client ({exc}): "
                      "pip install 'django-remq[metrics]'") from exc

from .conf import get_settings
from .core.sdk.metrics import RUN_BOUNDS_MS, queue_metrics
from .core.sdk.queues import QueueList
from .core.types import JobStatus
from .redis_clients import UNREACHABLE
from .sdk import Sdk, shared_sdk

log = logging.getLogger("django_remq.metrics")
FINAL = tuple(s.value for s in JobStatus if s.final)
#: Timeouts of the scrape's own connection (s): a scraper's timeout is usually 10 s.
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 3.0, 8.0


def _settings_sdk() -> Sdk:
    """The scrape's Sdk: one per process and ``REMQ`` value, its pool kept across scrapes."""
    return shared_sdk(socket_timeout=READ_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S)


class RemqCollector:
    """A ``prometheus_client`` collector of one key prefix's queues and workers.

    ``RemqCollector(sdk)``; without ``sdk``, one on ``REMQ``'s Redis and prefix. Register
    it on a registry of your own (``REGISTRY.register(...)``) to serve it beside other
    metrics, or use :func:`metrics_view`.
    """

    def __init__(self, sdk: Sdk | None = None) -> None:
        self._sdk = sdk

    @property
    def sdk(self) -> Sdk:
        return self._sdk if self._sdk is not None else _settings_sdk()

    def describe(self) -> list[Metric]:
        """Nothing: registering must not read Redis (the registry would collect)."""
        return []

    def collect(self) -> Iterator[Metric]:
        sdk = self.sdk
        infos: QueueList = sdk.get_queues_info()
        names = [i.name for i in infos]
        found = {m.queue: m for m in queue_metrics(sdk, names, minutes=1, with_totals=True)}
        jobs = GaugeMetricFamily("remq_queue_jobs", "Jobs in the queue per status.",
                                 labels=["queue", "status"])
        dlq = GaugeMetricFamily("remq_dead_letters", "Entries in the queue's dead-letter "
                                "stream.", labels=["queue"])
        paused = GaugeMetricFamily("remq_queue_paused", "1 while the queue is paused.",
                                   labels=["queue"])
        oldest = GaugeMetricFamily("remq_queue_oldest_waiting_seconds",
                                   "How long the queue's longest-waiting job has waited.",
                                   labels=["queue"])
        finished = CounterMetricFamily("remq_jobs_finished", "Jobs that reached a final "
                                       "status, per queue and status.",
                                       labels=["queue", "status"])
        retried = CounterMetricFamily("remq_job_retries", "Runs that failed and were "
                                      "scheduled to run again.", labels=["queue"])
        runs = HistogramMetricFamily("remq_job_run_seconds", "Run time of each job run "
                                     "(started to finished), retried runs included.",
                                     labels=["queue"])
        now = _now_ms()
        for info in infos:
            q = info.name
            for status in JobStatus:
                jobs.add_metric([q, status.value], getattr(info.stats, status.value))
            dlq.add_metric([q], info.stats.dlq)
            paused.add_metric([q], 1 if info.paused else 0)
            m = found.get(q)
            if m is None or m.totals is None:
                continue
            waited = m.oldest_wait_ms(now)
            oldest.add_metric([q], (waited or 0) / 1000)
            t = m.totals
            for final in FINAL:
                finished.add_metric([q, final], getattr(t, final))
            retried.add_metric([q], t.retried)
            cumulative, buckets = 0, []
            for bound, n in zip((*RUN_BOUNDS_MS, None), t.run_times.buckets, strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound is None else _seconds(bound), cumulative))
            runs.add_metric([q], buckets, t.run_times.total_ms / 1000)
        yield from (jobs, dlq, paused, oldest, finished, retried, runs)
        yield from _workers(sdk)


def _workers(sdk: Sdk) -> Iterator[Metric]:
    workers = sdk.get_workers()
    yield GaugeMetricFamily("remq_workers", "Workers alive (a heartbeat within its TTL).",
                            value=len(workers))
    slots = GaugeMetricFamily("remq_worker_slots", "Task slots of the live workers "
                              "(their concurrency), by state.", labels=["state"])
    busy = sum(len(w.running) for w in workers)
    slots.add_metric(["busy"], busy)
    slots.add_metric(["idle"], max(0, sum(w.concurrency for w in workers) - busy))
    yield slots


def _seconds(ms: int) -> str:
    return repr(ms / 1000)


def _now_ms() -> int:
    return int(time.time() * 1000)


def allowed(request: HttpRequest) -> bool:
    """A staff session the admin pages accept, or the bearer token of ``REMQ["METRICS"]``."""
    token = get_settings().metrics_token
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[7:].strip().encode(), token.encode())
    user = getattr(request, "user", None)
    if user is None or not (user.is_active and user.is_staff):
        return False
    check = get_settings().admin_permission  # as the admin pages ask
    return True if not check else bool(import_string(check)(request))


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The exposition of :class:`RemqCollector`, in the format the scraper's ``Accept``
    asks for (prometheus_client's own negotiation; plain text by default)."""
    if not allowed(request):
        response = HttpResponse("remq metrics: log in as staff, or send the token of "
                                "REMQ['METRICS']['TOKEN'] as 'Authorization: Bearer "
                                "<token>'.\n", status=401, content_type="text/plain")
        if get_settings().metrics_token:
            response["WWW-Authenticate"] = 'Bearer realm="remq metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RemqCollector())
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    try:
        body = encode(registry)
    except UNREACHABLE as exc:
        log.warning("metrics: Redis unreachable: %s", exc)
        return HttpResponse(f"remq metrics: Redis is not reachable ({type(exc).__name__})\n",
                            status=503, content_type="text/plain")
    return HttpResponse(body, content_type=content_type)


#: ``path("remq/metrics/", include("django_remq.metrics"))``
urlpatterns = [path("", metrics_view, name="remq_metrics")]
