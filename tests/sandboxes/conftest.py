"""Fixtures of the sandbox tests that more than one module uses: a Docker Engine with the images, a docker worker,
and the backend of a backend-parametrized test with a worker that runs it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import docker
import pytest

from tests.sandboxes.backends_under_test import BackendUnderTest, docker_under_test, process_under_test
from tests.sandboxes.docker_workers import docker_worker_in_place_of
from tests.services import ROOT, Service


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    """A Docker Engine with the sandbox images: started and built now when missing, or the session fails saying why."""
    for argv in (["scripts/docker-engine.sh"], ["make", "images"]):
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1500, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            pytest.fail(f"`{' '.join(argv)}` failed (exit {result.returncode}); the docker tests need it:\n{tail}", pytrace=False)
    return docker.from_env()


@pytest.fixture(scope="module")
def docker_worker(celery_worker: Service, docker_client: docker.DockerClient) -> Iterator[Service]:
    """The module's worker runs the docker backend (tests/sandboxes/docker_workers.py)."""
    with docker_worker_in_place_of(celery_worker, "docker-worker") as worker:
        yield worker


@pytest.fixture(scope="module", params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def backend_under_test(request: pytest.FixtureRequest, celery_worker: Service) -> Iterator[BackendUnderTest]:
    """Each backend in turn, with a worker that runs it (module-scoped: a module's cases of one backend run together,
    on one worker). A new backend is one more param here (tests/sandboxes/backends_under_test.py)."""
    if request.param == "process":
        yield process_under_test(celery_worker)
        return
    client = request.getfixturevalue("docker_client")
    with docker_worker_in_place_of(celery_worker, f"{request.module.__name__.rpartition('.')[2]}-docker-worker") as worker:
        yield docker_under_test(worker, client)


@pytest.fixture
def backend(backend_under_test: BackendUnderTest, settings) -> BackendUnderTest:
    """This process asks the same backend as the worker (listed before units_cleanup, so it cleans that one)."""
    settings.SANDBOX_BACKEND = backend_under_test.path
    return backend_under_test
