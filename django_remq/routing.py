"""``websocket_urlpatterns``: the gateway at ``ws/remq/`` for a project's ``asgi.py``::

    from django_remq.consumers.origin import RemqOriginValidator

    application = ProtocolTypeRouter({
        "http": django_asgi_app,
        "websocket": RemqOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    })

``RemqOriginValidator`` checks the Origin's port too (Channels'
``AllowedHostsOriginValidator`` does not: another app on the same host could ride the
site's cookies); see :mod:`django_remq.consumers.origin`.
"""

from __future__ import annotations

from django.urls import path

from .consumers.gateway import TaskGatewayConsumer

websocket_urlpatterns = [
    path("ws/remq/", TaskGatewayConsumer.as_asgi(), name="remq_gateway"),
]
