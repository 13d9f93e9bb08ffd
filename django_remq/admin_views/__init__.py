"""Admin pages over Redis: queues, jobs, dead letters, workers -- no models, no migrations.

Mount them before the admin's own URLs::

    path("admin/remq/", include("django_remq.admin_views.urls")),
    path("admin/", admin.site.urls),

Every page is a thin view over the public :class:`~django_remq.Sdk` (a fixed number
of Redis round trips per page, whatever the number of jobs), wrapped by
``admin.site.admin_view`` and ``REMQ["ADMIN_PERMISSION"]`` (see :mod:`.access`).
"""
