"""``websocket_urlpatterns``: the gateway at ``ws/remq/`` for a project's ``asgi.py``::

    application = ProtocolTypeRouter({
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    })
"""

from __future__ import annotations

from django.urls import path

from .consumers.gateway import TaskGatewayConsumer

websocket_urlpatterns = [
    path("ws/remq/", TaskGatewayConsumer.as_asgi(), name="remq_gateway"),
]
