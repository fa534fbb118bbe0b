"""The production backend: each unit is one hardened container on a private network of its own.

The container runs the same agent as the process backend, next to its broker, from
an image this project builds (``make images``: ``broker-academy/<kind>``). The
platform reaches the agent only through the unit's folder on the host, bind-mounted
into the container, where the agent's socket appears exactly where the process
backend puts it; no port is published. The unit's data folder there is the same
capped filesystem as the process backend's (disks.py): the bind mount carries it
into the container, so a broker fills its cap and not the host's disk. The network is ``internal`` and its bridge
holds no address of the host, so a cell reaches its own broker on localhost and
nothing else: not another unit, not the host's services, not the internet.

Hardening, and why each capability stays (everything else is dropped):
the agent runs as root in the container with only CHOWN (it hands the broker's
folder to the broker's account), SETUID and SETGID (brokers and cells run as
accounts of their own), and KILL (it stops runaway cells and the broker, which run
as those accounts). Brokers run as non-root accounts; cells as a uid of the unit's
own with no capabilities, under rlimits (bubblewrap cannot make namespaces in a
container without privileges; the container is the cell's view of the system).
Every container has no-new-privileges, a read-only root with a small /tmp,
memory, CPU and process limits from settings, and no Docker socket.

Every container and network carries labels naming this platform instance, the
unit, its sandbox, owner and broker, and a fixed name derived from the unit's:
starting looks up before it creates, and reconciliation finds all it owns.
Needs a local engine (the socket is a file in a bind mount), reached through
the usual DOCKER_HOST environment; the SDK's calls block, which is fine in the
Celery tasks that call a backend.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import docker
from django.conf import settings
from django.core.checks import CheckMessage, Error
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.models.networks import Network
from docker.types import LogConfig, Mount, Ulimit

from sandboxes.agent import protocol
from sandboxes.images import BROKER_USER, UNIT_DIR, image_ref

from . import disks
from .base import SandboxBackend, UnitSpec
from .process import ProcessBackend

log = logging.getLogger(__name__)

LABEL_INSTANCE = "org.broker-academy.instance"
LABEL_UNIT = "org.broker-academy.unit"
LABEL_SANDBOX = "org.broker-academy.sandbox"
LABEL_OWNER = "org.broker-academy.owner"
LABEL_BROKER = "org.broker-academy.broker"

#: What the agent keeps of root's capabilities; see the module's docstring for why each.
CAPABILITIES = ("CHOWN", "KILL", "SETGID", "SETUID")
#: The writable /tmp of a read-only container (cells' HOME, the JVM's perf data).
TMP_MB = 64
#: Open files per process: far above what a sandbox needs, and below the engine's own hard
#: limit on any usual host (raising it above that would take CAP_SYS_RESOURCE).
NOFILE = 8192
#: The kernel kills a sandbox before the platform when the host runs out of memory.
OOM_SCORE_ADJ = 500
#: The bridge of a unit's network gets no address: the host is then not reachable through it.
NETWORK_OPTIONS = {"com.docker.network.bridge.inhibit_ipv4": "true"}
#: The embedded DNS server forwards names it does not know from the host's network
#: unless the container names its own resolver (CVE-2024-29018): name one that is not there.
DNS = ["127.0.0.1"]
#: ...and a name that is not found fails in about a second, not ten.
DNS_OPTIONS = ["timeout:1", "attempts:1"]
SYSCTLS = {"net.ipv6.conf.all.disable_ipv6": "1"}
AGENT_START_S = 30.0
REMOVE_S = 30.0
#: How long a stop that keeps the data gives the agent to stop its broker cleanly (Kafka and RabbitMQ take 15 s at most).
STOP_KEEPING_S = 20

NO_ENGINE = (
    "The docker sandbox backend cannot reach a Docker Engine ({error}). "
    "Start one with scripts/docker-engine.sh, or point DOCKER_HOST at it."
)
NO_IMAGE = "The sandbox image {image} is missing: build the images with `make images`."
FOREIGN = "A {what} named {name!r} exists but does not belong to this platform instance ({instance}); remove or rename it."
AGENT_EXITED = "The sandbox container exited (status {status}) before its agent answered. Its last lines:\n{logs}"
AGENT_SILENT = "The sandbox agent did not start within {seconds:.0f} s. The container's last lines:\n{logs}"


class EngineUnavailable(RuntimeError):
    """No Docker Engine answers."""


class DockerBackend(SandboxBackend):
    """One container per unit, on an internal network of its own; see the module's docstring."""

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

    # -- names, labels, the engine -------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                client = docker.from_env(timeout=60)
                client.ping()
            except DockerException as exc:
                raise EngineUnavailable(NO_ENGINE.format(error=exc)) from exc
            self._client = client
        return self._client

    def unit_dir(self, name: str) -> Path:
        return self.root / name

    def socket_path(self, name: str) -> Path:
        """The agent's socket, in the unit's folder on the host (as with the process backend)."""
        return self.unit_dir(name) / protocol.SOCKET_NAME

    @staticmethod
    def network_name(name: str) -> str:
        return f"{name}-net"

    def labels(self, unit: UnitSpec) -> dict[str, str]:
        return {
            LABEL_INSTANCE: self.instance,
            LABEL_UNIT: unit.name,
            LABEL_SANDBOX: unit.name.rpartition("-")[2],
            LABEL_OWNER: unit.owner,
            LABEL_BROKER: unit.broker,
        }

    def owns(self, name: str) -> bool:
        """Units are named <instance>-<sandbox id>; anything else on the host is not ours to touch."""
        instance, _, number = name.rpartition("-")
        return instance == self.instance and number.isdigit()

    def _filters(self, name: str | None = None) -> dict[str, Any]:
        labels = [f"{LABEL_INSTANCE}={self.instance}"]
        if name is not None:
            labels.append(f"{LABEL_UNIT}={name}")
        return {"label": labels}

    def _ours(self, obj: Container | Network, name: str) -> bool:
        labels = obj.attrs.get("Config", {}).get("Labels") if isinstance(obj, Container) else obj.attrs.get("Labels")
        labels = labels or {}
        return labels.get(LABEL_INSTANCE) == self.instance and labels.get(LABEL_UNIT) == name

    def container(self, name: str, *, foreign_is_error: bool = False) -> Container | None:
        """The unit's container, or None; one of that name that is not ours is left alone (or refused)."""
        try:
            found = self.client.containers.get(name)
        except NotFound:
            return None
        if not self._ours(found, name):
            if foreign_is_error:
                raise RuntimeError(FOREIGN.format(what="container", name=name, instance=self.instance))
            return None
        return found

    # -- the contract ----------------------------------------------------------

    def start(self, unit: UnitSpec) -> None:
        name = unit.name
        directory = self.unit_dir(name)
        found = self.container(name, foreign_is_error=True)
        if found is not None:
            if found.status in ("running", "created", "restarting"):
                try:
                    found.start()  # a no-op when it runs: another start or a redelivered task got here first
                    self._wait_for_agent(found)
                except (APIError, RuntimeError):
                    log.warning("unit could not be reused; replacing it", extra={"unit": name}, exc_info=True)
                else:
                    log.info("unit reused", extra={"unit": name, "container": found.short_id})
                    return
            # Exited, dead, paused or broken: a fresh unit replaces it, with fresh data.
            self._remove_container(found)
            disks.remove(image=disks.image_path(self.root, name), mount_point=disks.data_dir(directory))
            shutil.rmtree(directory, ignore_errors=True)
        image = image_ref(unit.broker)
        try:
            self.client.images.get(image)
        except ImageNotFound:
            raise RuntimeError(NO_IMAGE.format(image=image)) from None
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o711)
        for stale in (protocol.SOCKET_NAME, protocol.STATUS_NAME, "agent.pid"):
            (directory / stale).unlink(missing_ok=True)
        # Mounted before the container is made: its bind mount of the folder then takes the capped filesystem along.
        cap_mb = disks.cap_mb(unit.broker)
        restore = disks.kept_path(self.root, unit.restore) if unit.restore else None
        disks.create(
            image=disks.image_path(self.root, name), mount_point=disks.data_dir(directory), size_mb=cap_mb, restore=restore
        )
        labels = self.labels(unit)
        network = self._ensure_network(name, labels)
        command = [
            "--unit-dir", UNIT_DIR, "--broker", unit.broker, "--cell-uid", str(ProcessBackend.cell_uid(name)),
            "--broker-user", BROKER_USER, "--cell-confinement", "setpriv", "--disk-mb", str(cap_mb),
        ]  # fmt: skip
        try:
            created = self.client.containers.create(
                image,
                command=command,
                name=name,
                labels=labels,
                network=network.name,
                dns=DNS,
                dns_opt=DNS_OPTIONS,
                sysctls=SYSCTLS,
                user="0:0",
                cap_drop=["ALL"],
                cap_add=list(CAPABILITIES),
                security_opt=["no-new-privileges:true"],
                read_only=True,
                tmpfs={"/tmp": f"rw,nosuid,nodev,size={TMP_MB}m,mode=1777"},
                mounts=[Mount(target=UNIT_DIR, source=str(directory), type="bind", read_only=False)],
                mem_limit=f"{self.memory_mb}m",
                memswap_limit=f"{self.memory_mb}m",
                pids_limit=self.pids,
                nano_cpus=int(self.cpus * 1e9),
                ulimits=[Ulimit(name="nofile", soft=NOFILE, hard=NOFILE)],
                oom_score_adj=OOM_SCORE_ADJ,
                ipc_mode="private",
                init=True,
                log_config=LogConfig(type="json-file", config={"max-size": "1m", "max-file": "2"}),
            )
        except APIError as exc:
            if exc.status_code != 409:
                raise
            created = self.container(name)  # another worker created it a moment ago: use theirs
            if created is None:
                raise
        created.start()
        self._wait_for_agent(created)
        log.info("unit started", extra={"unit": name, "broker": unit.broker, "container": created.short_id})

    def stop(self, name: str) -> None:
        self._end(name)
        disks.remove(image=disks.image_path(self.root, name), mount_point=disks.data_dir(self.unit_dir(name)))
        shutil.rmtree(self.unit_dir(name), ignore_errors=True)
        log.info("unit stopped", extra={"unit": name})

    def stop_keeping(self, name: str, *, key: str) -> int | None:
        """Like stop(), but the same disk image the process backend keeps is kept under ``key``.

        The container is stopped first (SIGTERM to the agent, which stops its broker cleanly) so
        that what is kept is what the broker flushed, not what a forced removal cut off.
        """
        found = self.container(name)
        if found is not None:
            with contextlib.suppress(NotFound, APIError):
                found.stop(timeout=STOP_KEEPING_S)
        self._end(name)
        kept = disks.keep(
            image=disks.image_path(self.root, name),
            mount_point=disks.data_dir(self.unit_dir(name)),
            kept=disks.kept_path(self.root, key),
        )
        shutil.rmtree(self.unit_dir(name), ignore_errors=True)
        log.info("unit stopped, data kept", extra={"unit": name, "key": key, "bytes": kept})
        return kept

    def discard_kept(self, key: str) -> None:
        disks.discard(disks.kept_path(self.root, key))

    def kept_exists(self, key: str) -> bool:
        return disks.kept_path(self.root, key).exists()

    def kept_keys(self) -> list[str]:
        return sorted(k for k in disks.kept_keys(self.root) if k.startswith(f"{self.instance}-"))

    def _end(self, name: str) -> None:
        """The unit's containers and networks; its disk and folder stay for the caller."""
        found = self.container(name)
        containers = {c.id: c for c in self.client.containers.list(all=True, filters=self._filters(name))}
        if found is not None:
            containers[found.id] = found
        for container in containers.values():
            self._remove_container(container)
        for network in self._networks(name):
            self._remove_network(network)

    def poll(self, name: str) -> int | None:
        found = self.container(name)
        if found is None:
            return -1
        if found.status == "running":
            return None
        return int(found.attrs.get("State", {}).get("ExitCode", -1))

    def list_units(self) -> list[str]:
        names: set[str] = set()
        for container in self.client.containers.list(all=True, filters=self._filters()):
            names.add(container.labels.get(LABEL_UNIT, ""))
        for network in self.client.networks.list(filters=self._filters()):
            names.add((network.attrs.get("Labels") or {}).get(LABEL_UNIT, ""))
        if self.root.is_dir():
            names.update(p.name for p in self.root.iterdir() if p.is_dir())
        names.update(disks.unit_names(self.root))
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

    # -- parts -----------------------------------------------------------------

    def _networks(self, name: str) -> list[Network]:
        found = {n.id: n for n in self.client.networks.list(filters=self._filters(name))}
        with contextlib.suppress(NotFound):
            network = self.client.networks.get(self.network_name(name))
            if self._ours(network, name):
                found[network.id] = network
        return list(found.values())

    def _ensure_network(self, name: str, labels: dict[str, str]) -> Network:
        network_name = self.network_name(name)
        try:
            network = self.client.networks.get(network_name)
        except NotFound:
            pass
        else:
            if not self._ours(network, name):
                raise RuntimeError(FOREIGN.format(what="network", name=network_name, instance=self.instance))
            return network
        try:
            return self.client.networks.create(
                network_name, driver="bridge", internal=True, labels=labels, options=NETWORK_OPTIONS, check_duplicate=True
            )
        except APIError as exc:
            if exc.status_code != 409:
                raise
            return self.client.networks.get(network_name)  # created by a concurrent start

    def _wait_for_agent(self, container: Container) -> None:
        """Return once the agent listens on its socket; raise when the container exits first or never gets there."""
        socket = self.socket_path(container.name)
        deadline = time.monotonic() + AGENT_START_S
        while not socket.exists():
            container.reload()
            if container.status not in ("running", "created", "restarting"):
                status = container.attrs.get("State", {}).get("ExitCode")
                raise RuntimeError(AGENT_EXITED.format(status=status, logs=self._logs(container)))
            if time.monotonic() > deadline:
                raise RuntimeError(AGENT_SILENT.format(seconds=AGENT_START_S, logs=self._logs(container)))
            time.sleep(0.05)

    @staticmethod
    def _logs(container: Container) -> str:
        try:
            return container.logs(tail=20).decode(errors="replace")
        except DockerException:
            return "(no logs)"

    def _remove_container(self, container: Container) -> None:
        """Kill and remove; gone already, or being removed by someone else, is success."""
        try:
            container.remove(force=True)
        except NotFound:
            return
        except APIError as exc:
            if exc.status_code != 409:  # 409: "removal ... is already in progress"
                raise
        deadline = time.monotonic() + REMOVE_S
        while time.monotonic() < deadline:
            try:
                container.reload()
            except NotFound:
                return
            time.sleep(0.1)
        raise RuntimeError(f"container {container.name} was not removed within {REMOVE_S:.0f} s")

    def _remove_network(self, network: Network) -> None:
        deadline = time.monotonic() + REMOVE_S
        while True:
            try:
                network.remove()
                return
            except NotFound:
                return
            except APIError:
                if time.monotonic() > deadline:
                    raise
            # Still attached: a container being removed, or one that is not a unit's. Detach it.
            with contextlib.suppress(NotFound, APIError):
                network.reload()
                for attached in (network.attrs.get("Containers") or {}).keys():
                    network.disconnect(attached, force=True)
            time.sleep(0.2)
