"""``path("admin/remq/", include("django_remq.admin_views.urls"))``, before ``admin.site.urls``."""

from __future__ import annotations

from django.urls import path, register_converter
from django.views.generic import RedirectView

from .dead_letters import dead_letters, dead_letters_action
from .download import download
from .job import job, job_action
from .jobs import jobs, jobs_bulk
from .live import live
from .queues import queue_action, queues
from .workers import cron_run_now, workers

app_name = "remq_admin"


class JobAction:
    """The one-job actions; lets a job id contain "/" (explicit ids like "report/2026-10")."""

    regex = "retry|cancel|delete|pause|resume|run_now"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(JobAction, "remq_job_action")

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="remq_admin:queues"), name="index"),
    path("queues/", queues, name="queues"),
    path("queues/<str:queue>/<str:action>/", queue_action, name="queue_action"),
    path("jobs/", jobs, name="jobs"),
    path("jobs/bulk/", jobs_bulk, name="jobs_bulk"),
    path("jobs/<str:queue>/<path:job_id>/<remq_job_action:action>/", job_action,
         name="job_action"),
    path("jobs/<str:queue>/<path:job_id>/", job, name="job"),
    # a job's whole value (the job page previews large ones): its name before the id,
    # which may hold "/"
    path("download/<str:queue>/<str:name>/<path:job_id>", download, name="download"),
    path("dead-letters/", dead_letters, name="dead_letters"),
    path("dead-letters/action/", dead_letters_action, name="dead_letters_action"),
    path("workers/", workers, name="workers"),
    path("cron/<str:queue>/<path:event>/run/", cron_run_now, name="cron_run_now"),
    path("live/", live, name="live"),
]
