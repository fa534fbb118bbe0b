"""HTTP API of sandboxes (the page uses it to ask for, stop and reset its broker)."""

app_name = "sandboxes"
urlpatterns: list = []
