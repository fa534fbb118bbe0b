"""WebSocket routes of the sandboxes app."""

from django.urls import path

from .consumers import LiveConsumer
from .terminal_consumer import TerminalConsumer

websocket_urlpatterns = [
    path("ws/live/", LiveConsumer.as_asgi()),
    path("ws/terminal/<str:broker>/", TerminalConsumer.as_asgi()),
]
