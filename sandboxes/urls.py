"""HTTP API of sandboxes (the page uses it to ask for, stop and reset its broker)."""

from django.urls import path

app_name = "sandboxes"
urlpatterns: list = []
