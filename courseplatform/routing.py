"""WebSocket URLs of every app, gathered in one list for asgi.py."""

from sandboxes.routing import websocket_urlpatterns as sandbox_patterns

websocket_urlpatterns = [*sandbox_patterns]
