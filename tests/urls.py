from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/remq/", include("django_remq.admin_views.urls")),
    path("admin/", admin.site.urls),
]
