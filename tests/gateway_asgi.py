"""The ASGI application of the gateway's end-to-end tests, mounted as the README says."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_settings_gateway")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (after Django is set up)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from django_remq.consumers.origin import RemqOriginValidator  # noqa: E402
from django_remq.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": RemqOriginValidator(
        AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
