"""The worker's heartbeat file, for a liveness probe that does not start a Python interpreter.

A Celery worker can hang with its process alive: the main process's event loop stuck (a deadlock,
a broker connection that blocks), so it neither takes tasks nor answers ``celery inspect ping``.
This bootstep touches ``WORKER_HEARTBEAT_FILE`` every ``WORKER_HEARTBEAT_S`` seconds from that
event loop's own timer, so the file goes stale exactly when the loop stops turning. The probe
(deploy/kubernetes/base/worker.yaml) is one shell line comparing the file's age with
``WORKER_HEARTBEAT_STALE_S``; ``celery inspect ping`` would start an interpreter and a broker
connection at every probe. Off when the file setting is empty (``make run``, the tests' workers).

Read from the environment, not Django settings: the step is added to the app before Django is set up.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from celery import bootsteps

log = logging.getLogger(__name__)

#: The liveness probe, the same line the manifest runs: fails (exit 1) when the file is missing or stale.
PROBE = 'test $(( $(date +%s) - $(stat -c %Y "$WORKER_HEARTBEAT_FILE") )) -lt "$WORKER_HEARTBEAT_STALE_S"'


def heartbeat_path() -> Path | None:
    given = os.environ.get("WORKER_HEARTBEAT_FILE", "")
    return Path(given) if given else None


def heartbeat_interval() -> float:
    return float(os.environ.get("WORKER_HEARTBEAT_S", "10"))


def _touch(path: Path) -> None:
    try:
        path.touch()
    except OSError:
        log.warning("worker heartbeat: cannot touch %s", path, exc_info=True)


class Heartbeat(bootsteps.StartStopStep):
    """Touches the heartbeat file from the worker's timer (its main process's event loop)."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.path = heartbeat_path()
        self.tref: Any = None

    def start(self, worker: Any) -> None:
        if self.path is None:
            return
        _touch(self.path)
        self.tref = worker.timer.call_repeatedly(heartbeat_interval(), _touch, (self.path,), priority=10)

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        if self.path is not None:
            # A worker shutting down is not alive: a probe during a warm shutdown may say so.
            self.path.unlink(missing_ok=True)
