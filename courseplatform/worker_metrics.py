"""The Celery worker's own ``/metrics`` port (``METRICS_WORKER_PORT``), for what its processes observe.

Celery's prefork pool runs tasks (and each child's readiness follower) in child processes, so
prometheus_client's multiprocess mode is needed: every child writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` and the worker's main process serves their sum. prometheus_client
chooses that mode when it is imported, which Django's setup does before any worker signal, so
the directory must be in the worker's environment from its start (docs/metrics.md); without it
the port stays closed and the log says why. Files of earlier runs in it are removed at start (an
earlier run's counts must not be added in). This module imports prometheus_client only in its
functions: it is imported with the Celery app by every process.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings

log = logging.getLogger(__name__)

_server: WSGIServer | None = None


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """A line per scrape is noise; the JSON log says what matters."""


def _enabled() -> bool:
    return bool(getattr(settings, "METRICS_TOKEN", "") and getattr(settings, "METRICS_WORKER_PORT", 0))


def worker_metrics_prepare() -> None:
    """In the worker's main process, before its pool starts: check the multiprocess directory, clear old runs' files."""
    if not _enabled():
        return
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not given:
        log.error("worker metrics off: METRICS_WORKER_PORT is set but PROMETHEUS_MULTIPROC_DIR is not (docs/metrics.md)")
        return
    directory = Path(given)
    directory.mkdir(parents=True, exist_ok=True)
    own = f"_{os.getpid()}.db"
    for stale in directory.glob("*.db"):
        if not stale.name.endswith(own):
            stale.unlink(missing_ok=True)


def worker_metrics_serve() -> None:
    """In the worker's main process: serve ``/metrics`` on METRICS_WORKER_HOST:METRICS_WORKER_PORT in a thread."""
    global _server
    if not _enabled() or not os.environ.get("PROMETHEUS_MULTIPROC_DIR") or _server is not None:
        return
    from prometheus_client.exposition import ThreadingWSGIServer

    from .metrics_endpoint import worker_metrics_app

    host, port = settings.METRICS_WORKER_HOST, int(settings.METRICS_WORKER_PORT)
    _server = make_server(host, port, worker_metrics_app(), ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=_server.serve_forever, name="worker-metrics", daemon=True).start()
    log.info("worker metrics served", extra={"host": host, "port": port})


def worker_metrics_child_gone(pid: int) -> None:
    """A pool child ended: its live gauges go (its counters and histograms stay counted)."""
    if _enabled() and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def worker_metrics_stop() -> None:
    """The worker is ending: close the port."""
    global _server
    if _server is not None:
        _server.shutdown()
        _server.server_close()
        _server = None
