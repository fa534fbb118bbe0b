"""Fixtures of the sandbox tests that more than one module uses: a Docker Engine with the images, a docker worker."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import docker
import pytest

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
