"""Pages of the sandboxes app: the broker's own web console, proxied for its owner."""

from django.urls import path

from . import console_views

app_name = "sandboxes"
urlpatterns = [
    path("<slug:broker>/ui/", console_views.console_ui, name="console"),
    path("<slug:broker>/ui/<path:rest>", console_views.console_ui, name="console_path"),
    path("<slug:broker>/console/start", console_views.console_start, name="console_start"),
]
