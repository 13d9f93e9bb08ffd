"""The test URLs plus the metrics view, mounted as the docs say (tests/test_metrics.py)."""

from django.urls import include, path

from .urls import urlpatterns as admin_urls

urlpatterns = [path("remq/metrics/", include("django_remq.metrics")), *admin_urls]
