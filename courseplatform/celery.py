"""The Celery app: configured from Django settings (CELERY_*), tasks found in each app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "courseplatform.settings.development")

app = Celery("courseplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="courseplatform.ping", time_limit=10)
def ping() -> str:
    """Answer "pong": /healthz and the tests use it to prove a worker is consuming."""
    return "pong"
