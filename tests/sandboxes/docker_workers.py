"""A Celery worker that runs the docker backend, in place of the session's (which runs the process backend).

Shared by the docker backend's tests and the backend-parametrized contract of a cell
(tests/sandboxes/conftest.py makes fixtures of them).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from courseplatform.celery import app
from tests.services import Service, celery_worker_start, wait_for

DOCKER_BACKEND = "sandboxes.backends.docker.DockerBackend"


def docker_settings() -> dict[str, str]:
    """What makes a worker run the docker backend, unprivileged, through a unit launcher of the docker backend's own."""
    from django.conf import settings

    return {
        "SANDBOX_BACKEND": DOCKER_BACKEND,
        "SANDBOX_LAUNCHER_SOCKET": str(Path(settings.SANDBOX_ROOT) / "launcher-docker.sock"),
    }


@contextlib.contextmanager
def docker_environment() -> Iterator[None]:
    """Workers started inside run the docker backend: a worker reads its settings from its environment at start."""
    wanted = docker_settings()
    previous = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def docker_worker_start(name: str, concurrency: int = 2) -> Service:
    with docker_environment():
        return celery_worker_start(name=name, concurrency=concurrency)


def wait_for_a_worker() -> None:
    wait_for(lambda: any(app.control.ping(timeout=0.5)), timeout=60, what="a worker answering", interval=0.2)


@contextlib.contextmanager
def docker_worker_in_place_of(session_worker: Service, name: str) -> Iterator[Service]:
    """A docker backend's worker while the block runs; the session's worker waits meanwhile, so no task goes astray."""
    session_worker.stop()
    worker = docker_worker_start(name)
    try:
        yield worker
    finally:
        worker.stop()
        session_worker.restart()  # the session's worker, as it was
        wait_for_a_worker()
