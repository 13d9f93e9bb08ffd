"""ASGI entry point.

HTTP only for now. The WebSocket gateway (live ``task_update`` / ``task_finished``
messages over Django Channels) plugs in here as a ``ProtocolTypeRouter``:

    application = ProtocolTypeRouter({
        "http": django_asgi_app,
        "websocket": <django_remq's gateway consumer routes>,
    })
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
django_asgi_app = get_asgi_application()
application = django_asgi_app
