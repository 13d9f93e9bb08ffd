from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # the task-queue admin pages (staff only), before the admin's own URLs
    path("admin/remq/", include("django_remq.admin_views.urls")),
    path("admin/", admin.site.urls),
    path("", include("demo.urls")),
]
