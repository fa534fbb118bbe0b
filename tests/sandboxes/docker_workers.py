"""A Celery worker that runs the docker backend, in place of the session's (which runs the process backend).

Shared by the docker backend's tests and the backend-parametrized contract of a cell
(tests/sandboxes/conftest.py makes fixtures of them).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from courseplatform.celery import app
from tests.services import Service, celery_worker_start, wait_for

DOCKER_BACKEND = "sandboxes.backends.docker.DockerBackend"


@contextlib.contextmanager
def docker_environment() -> Iterator[None]:
    """Workers started inside run the docker backend: a worker reads SANDBOX_BACKEND from its environment at start."""
    previous = os.environ.get("SANDBOX_BACKEND")
    os.environ["SANDBOX_BACKEND"] = DOCKER_BACKEND
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SANDBOX_BACKEND"]
        else:
            os.environ["SANDBOX_BACKEND"] = previous


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
