"""ASGI entry point: Django's HTTP views, and the remq WebSocket gateway at ``ws/remq/``.

``RemqOriginValidator`` refuses pages of other sites, other ports of this host
included (Origin check; ``REMQ['GATEWAY']['allowed_origins']`` to allow others);
``AuthMiddlewareStack`` gives the gateway the signed-in user its policy needs.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
django_asgi_app = get_asgi_application()  # set Django up before importing consumers

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from django_remq.consumers.origin import RemqOriginValidator  # noqa: E402
from django_remq.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": RemqOriginValidator(
        AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
