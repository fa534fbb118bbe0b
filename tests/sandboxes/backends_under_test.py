"""The backends that backend-parametrized tests run on, each as a worker that runs it and what a test inspects of its units.

tests/sandboxes/conftest.py makes the ``backend`` fixture of them. A new backend is one more
function here returning a :class:`BackendUnderTest`, and one more param of that fixture.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import docker
from django.conf import settings

from sandboxes.backends import cgroups, disks
from sandboxes.backends.process import ProcessBackend
from sandboxes.images import UNIT_DIR
from tests.sandboxes import docker_units
from tests.sandboxes.docker_workers import DOCKER_BACKEND, docker_environment
from tests.services import Service

PROCESS_BACKEND = "sandboxes.backends.process.ProcessBackend"


@dataclass(frozen=True)
class BackendUnderTest:
    """One backend as the tests see it (``name`` is the param, "process" or "docker")."""

    name: str
    path: str  # settings.SANDBOX_BACKEND, in this process and in ``worker``
    worker: Service  # the worker that runs this backend now
    environment: Callable[[], AbstractContextManager[None]]  # a worker started inside runs this backend
    leftovers: Callable[[str], dict[str, list[str]]]  # what of a unit still exists, by kind: {} once it is gone
    first_pid: Callable[[str], int]  # the host pid of a running unit's first process: another once it is started again
    folder_in_cells: Callable[[str], str]  # where a cell would find its unit's folder (which it may not open)


def process_leftovers(unit: str) -> dict[str, list[str]]:
    """A process unit's folder, disk image, mounts below its folder, network namespace, cgroups and processes."""
    backend = ProcessBackend()
    folder = backend.unit_dir(unit)
    mount_points = [line.split(" ")[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    found = {
        "folder": [str(p) for p in [folder] if p.exists()],
        "disk image": [str(p) for p in [disks.image_path(backend.root, unit)] if p.exists()],
        "mounts": [point for point in mount_points if point == str(folder) or point.startswith(f"{folder}/")],
        "network namespace": [str(p) for p in [Path("/run/netns", unit)] if p.exists()],
        "cgroups": [unit] if cgroups.UnitCgroups(settings.SANDBOX_INSTANCE, unit).exists() else [],
        "processes": [str(pid) for pid in backend.processes(unit)],
    }
    return {kind: names for kind, names in found.items() if names}


def process_under_test(worker: Service) -> BackendUnderTest:
    """The process backend, run by the session's worker as it is."""
    return BackendUnderTest(
        name="process",
        path=PROCESS_BACKEND,
        worker=worker,
        environment=contextlib.nullcontext,
        leftovers=process_leftovers,
        first_pid=lambda unit: int((ProcessBackend().unit_dir(unit) / "agent.pid").read_text()),  # the agent
        folder_in_cells=lambda unit: str(ProcessBackend().unit_dir(unit)),  # the host's own
    )


def docker_under_test(worker: Service, client: docker.DockerClient) -> BackendUnderTest:
    """The docker backend, run by ``worker`` (tests/sandboxes/docker_workers.py)."""
    return BackendUnderTest(
        name="docker",
        path=DOCKER_BACKEND,
        worker=worker,
        environment=docker_environment,
        leftovers=lambda unit: docker_units.leftovers(client, unit),
        first_pid=lambda unit: client.containers.get(unit).attrs["State"]["Pid"],  # the container's init
        folder_in_cells=lambda unit: UNIT_DIR,  # bound there from the host
    )
