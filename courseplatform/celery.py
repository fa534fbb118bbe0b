"""The Celery app: configured from Django settings (CELERY_*), tasks found in each app."""

import os

from celery import Celery
from celery.signals import celeryd_init, worker_process_shutdown, worker_ready, worker_shutdown

from courseplatform import worker_metrics
from courseplatform.worker_heartbeat import Heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "courseplatform.settings.development")

app = Celery("courseplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add(Heartbeat)  # the liveness probe's file (courseplatform/worker_heartbeat.py)


@app.task(name="courseplatform.ping", time_limit=10)
def ping() -> str:
    """Answer "pong": /healthz and the tests use it to prove a worker is consuming."""
    return "pong"


# The worker's /metrics port (courseplatform/worker_metrics.py): multiprocess mode chosen before Django
# is set up, served once the worker runs, each pool child's leftovers dropped when it ends.
@celeryd_init.connect
def _metrics_prepare(**_: object) -> None:
    worker_metrics.worker_metrics_prepare()


@worker_ready.connect
def _metrics_serve(**_: object) -> None:
    worker_metrics.worker_metrics_serve()


@worker_process_shutdown.connect
def _metrics_child_gone(pid: int | None = None, **_: object) -> None:
    worker_metrics.worker_metrics_child_gone(pid or os.getpid())


@worker_shutdown.connect
def _metrics_stop(**_: object) -> None:
    worker_metrics.worker_metrics_stop()
