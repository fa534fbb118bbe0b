"""The production backend: each unit is one hardened container on a private network of its own.

The container runs the same agent as the process backend, next to its broker, from
an image this project builds (``make images``: ``broker-academy/<kind>``). The
platform reaches the agent only through the unit's folder on the host, bind-mounted
into the container, where the agent's socket appears exactly where the process
backend puts it; no port is published. The unit's data folder there is the same
capped filesystem as the process backend's (disks.py, unit_folders.py): the bind mount carries it
into the container, so a broker fills its cap and not the host's disk.

This module is the backend's contract; its parts are the container (docker_containers.py:
its image, hardened spec and removal), its network (docker_networks.py) and the labels
that say what this platform instance owns (docker_labels.py).
Needs a local engine (the socket is a file in a bind mount), reached through
the usual DOCKER_HOST environment; the SDK's calls block, which is fine in the
Celery tasks that call a backend.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import docker
from django.conf import settings
from django.core.checks import CheckMessage, Error
from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container

from sandboxes.agent import protocol
from sandboxes.launcher.client import ThroughLauncher

from . import disks
from .base import SandboxBackend, UnitSpec
from .docker_containers import LIVE, container_remove, container_spec, container_wait_for_agent, image_require
from .docker_labels import LABEL_UNIT, get_ours, label_filters, unit_labels
from .docker_networks import network_ensure, network_remove, unit_networks
from .process import ProcessBackend, platform_gid
from .unit_folders import UnitFolders

log = logging.getLogger(__name__)

#: How long a stop that keeps the data gives the agent to stop its broker cleanly (Kafka and RabbitMQ take 15 s at most).
STOP_KEEPING_S = 20

NO_ENGINE = (
    "The docker sandbox backend cannot reach a Docker Engine ({error}). "
    "Start one with scripts/docker-engine.sh, or point DOCKER_HOST at it."
)


NOT_ROOT = (
    "The docker backend makes each sandbox's capped disk (a loop mount) and its container, which needs root. "
    "Start the unit launcher as root with the same settings (python -m sandboxes.launcher) and run the platform "
    "as a member of its group (SANDBOX_PLATFORM_GROUP), or run the worker as root."
)


class EngineUnavailable(RuntimeError):
    """No Docker Engine answers."""


class DockerUnits(UnitFolders, SandboxBackend):
    """The docker backend's own work, done as root: one container per unit, on an internal network of its own.

    Root's because of the unit's capped disk (a loop mount) and because the engine's socket is root's in
    all but name (its group can start a privileged container): the unit launcher does this for an
    unprivileged platform, as for the process backend.
    """

    def __init__(self) -> None:
        self.root = Path(settings.SANDBOX_ROOT)
        self.instance = settings.SANDBOX_INSTANCE
        self.memory_mb = settings.SANDBOX_DOCKER_MEMORY_MB
        self.pids = settings.SANDBOX_DOCKER_PIDS
        self.cpus = settings.SANDBOX_DOCKER_CPUS
        self._client: docker.DockerClient | None = None

    @classmethod
    def check_settings(cls) -> list[CheckMessage]:
        """Each unit's container limits must leave its broker room to run (sandboxes.E101-E103)."""
        errors: list[CheckMessage] = []
        memory_mb, pids, cpus = settings.SANDBOX_DOCKER_MEMORY_MB, settings.SANDBOX_DOCKER_PIDS, settings.SANDBOX_DOCKER_CPUS
        if not isinstance(memory_mb, int) or memory_mb < 512:
            errors.append(
                Error(
                    f"SANDBOX_DOCKER_MEMORY_MB={memory_mb!r}: a unit needs at least 512 (its broker alone may use 512)",
                    id="sandboxes.E101",
                )
            )
        if not isinstance(pids, int) or pids < 128:
            errors.append(
                Error(
                    f"SANDBOX_DOCKER_PIDS={pids!r}: a unit needs at least 128 (an idle Kafka alone runs ~75 threads)",
                    id="sandboxes.E102",
                )
            )
        if not isinstance(cpus, int | float) or not 0.01 <= cpus <= (os.cpu_count() or 1):
            errors.append(
                Error(
                    f"SANDBOX_DOCKER_CPUS={cpus!r}: must be between 0.01 and this machine's {os.cpu_count()} CPUs",
                    id="sandboxes.E103",
                )
            )
        return errors

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            if os.geteuid() != 0:
                raise EngineUnavailable(NOT_ROOT)
            try:
                client = docker.from_env(timeout=60)
                client.ping()
            except DockerException as exc:
                raise EngineUnavailable(NO_ENGINE.format(error=exc)) from exc
            self._client = client
        return self._client

    def container(self, name: str, *, foreign_is_error: bool = False) -> Container | None:
        """The unit's container, or None; one of that name that is not ours is left alone (or refused)."""
        found: Container | None = get_ours(
            self.client.containers, name, instance=self.instance, unit=name, what="container", foreign_is_error=foreign_is_error
        )
        return found

    # -- the contract ----------------------------------------------------------

    def start(self, unit: UnitSpec) -> None:
        name = unit.name
        directory = self.unit_dir(name)
        found = self.container(name, foreign_is_error=True)
        if found is not None:
            if found.status in LIVE:
                try:
                    found.start()  # a no-op when it runs: another start or a redelivered task got here first
                    container_wait_for_agent(found, self.socket_path(name))
                except (APIError, RuntimeError):
                    log.warning("unit could not be reused; replacing it", extra={"unit": name}, exc_info=True)
                else:
                    log.info("unit reused", extra={"unit": name, "container": found.short_id})
                    return
            # Exited, dead, paused or broken: a fresh unit replaces it, with fresh data.
            container_remove(found)
            self._remove_folder(name)
        image = image_require(self.client, unit.broker)
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o711)
        for stale in (protocol.SOCKET_NAME, protocol.STATUS_NAME, "agent.pid"):
            (directory / stale).unlink(missing_ok=True)
        # Mounted before the container is made: its bind mount of the folder then takes the capped filesystem along.
        cap_mb = disks.cap_mb(unit.broker)
        restore = self.kept_path(unit.restore) if unit.restore else None
        disks.create(image=self.image_path(name), mount_point=disks.data_dir(directory), size_mb=cap_mb, restore=restore)
        labels = unit_labels(instance=self.instance, unit=unit)
        network = network_ensure(self.client, instance=self.instance, unit=name, labels=labels)
        spec = container_spec(
            image=image,
            name=name,
            broker=unit.broker,
            labels=labels,
            network=network.name,
            unit_dir=directory,
            cell_uid=ProcessBackend.cell_uid(name),
            socket_gid=platform_gid(),
            disk_mb=cap_mb,
            memory_mb=self.memory_mb,
            pids=self.pids,
            cpus=self.cpus,
        )
        try:
            created = self.client.containers.create(**spec)
        except APIError as exc:
            if exc.status_code != 409:
                raise
            created = self.container(name)  # another worker created it a moment ago: use theirs
            if created is None:
                raise
        created.start()
        container_wait_for_agent(created, self.socket_path(name))
        log.info("unit started", extra={"unit": name, "broker": unit.broker, "container": created.short_id})

    def stop_keeping(self, name: str, *, key: str) -> int | None:
        """Like stop(), but the same disk image the process backend keeps is kept under ``key``.

        The container is stopped first (SIGTERM to the agent, which stops its broker cleanly) so
        that what is kept is what the broker flushed, not what a forced removal cut off.
        """
        found = self.container(name)
        if found is not None:
            with contextlib.suppress(NotFound, APIError):
                found.stop(timeout=STOP_KEEPING_S)
        return super().stop_keeping(name, key=key)

    def _end(self, name: str) -> None:
        """The unit's containers and networks; its disk and folder stay for the caller."""
        found = self.container(name)
        labelled = self.client.containers.list(all=True, filters=label_filters(instance=self.instance, unit=name))
        containers = {c.id: c for c in labelled}
        if found is not None:
            containers[found.id] = found
        for container in containers.values():
            container_remove(container)
        for network in unit_networks(self.client, instance=self.instance, unit=name):
            network_remove(network)

    def poll(self, name: str) -> int | None:
        found = self.container(name)
        if found is None:
            return -1
        if found.status == "running":
            return None
        return int(found.attrs.get("State", {}).get("ExitCode", -1))

    def list_units(self) -> list[str]:
        names = self._folder_units()
        everything = label_filters(instance=self.instance)
        for container in self.client.containers.list(all=True, filters=everything):
            names.add(container.labels.get(LABEL_UNIT, ""))
        for network in self.client.networks.list(filters=everything):
            names.add((network.attrs.get("Labels") or {}).get(LABEL_UNIT, ""))
        return sorted(n for n in names if self.owns(n))

    def processes(self, name: str) -> list[int]:
        """The host's pids of the container's processes (empty when it does not run)."""
        found = self.container(name)
        if found is None or found.status != "running":
            return []
        try:
            top = self.client.api.top(found.id)
        except (NotFound, APIError):
            return []
        column = top["Titles"].index("PID")
        return sorted(int(row[column]) for row in top.get("Processes") or [])


class DockerBackend(ThroughLauncher, DockerUnits):
    """The docker backend. Root does the work itself; the platform's unprivileged worker has the unit launcher do
    it (sandboxes/launcher), and reaches the agents through the platform's group, as with the process backend."""
