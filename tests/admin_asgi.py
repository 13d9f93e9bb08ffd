"""The ASGI application of the admin's live-socket browser test: the gateway's test
application (tests/gateway_asgi.py) with the static files served, as ``runserver`` does,
so the pages' live.js loads."""

from __future__ import annotations

from channels.routing import ProtocolTypeRouter
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from tests.gateway_asgi import application as gateway_application
from tests.gateway_asgi import django_asgi_app

application = ProtocolTypeRouter({
    "http": ASGIStaticFilesHandler(django_asgi_app),
    "websocket": gateway_application.application_mapping["websocket"],
})
