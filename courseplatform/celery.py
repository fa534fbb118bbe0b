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


@celeryd_init.connect
def _database_pool_off(**_: object) -> None:
    """The worker connects per task, without the web server's pool (settings/base.py).

    Celery's Django fixup closes a prefork child's pool after every task (celery/fixups/django.py,
    ``_close_database``), which cut the readiness follower's threads (sandboxes/services/readiness.py)
    off mid-wait ("the pool is closed"). Set before any connection exists, so every one made in this
    process and its children is a plain connection.
    """
    from django.conf import settings

    for database in settings.DATABASES.values():
        database.get("OPTIONS", {}).pop("pool", None)


@worker_ready.connect
def _metrics_serve(**_: object) -> None:
    worker_metrics.worker_metrics_serve()


@worker_process_shutdown.connect
def _metrics_child_gone(pid: int | None = None, **_: object) -> None:
    worker_metrics.worker_metrics_child_gone(pid or os.getpid())


@worker_shutdown.connect
def _metrics_stop(**_: object) -> None:
    worker_metrics.worker_metrics_stop()
