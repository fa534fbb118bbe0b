"""A docker unit's container: the image it runs, its hardened spec, waiting for its agent, and its removal.

Hardening, and why each capability stays (everything else is dropped): the agent runs
as root in the container with only CHOWN (it hands the broker's folder to the broker's
account), SETUID and SETGID (brokers and cells run as accounts of their own), and KILL
(it stops runaway cells and the broker, which run as those accounts). Brokers run as
non-root accounts; cells as a uid of the unit's own with no capabilities, under rlimits
(bubblewrap cannot make namespaces in a container without privileges; the container is
the cell's view of the system). Every container has no-new-privileges, a read-only root
with a small /tmp, memory, CPU and process limits from settings, and no Docker socket.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.types import LogConfig, Mount, Ulimit

from sandboxes.images import BROKER_USER, UNIT_DIR, image_ref

#: What the agent keeps of root's capabilities; see the module's docstring for why each.
CAPABILITIES = ("CHOWN", "KILL", "SETGID", "SETUID")
#: The writable /tmp of a read-only container (cells' HOME, the JVM's perf data).
TMP_MB = 64
#: Open files per process: far above what a sandbox needs, and below the engine's own hard
#: limit on any usual host (raising it above that would take CAP_SYS_RESOURCE).
NOFILE = 8192
#: The kernel kills a sandbox before the platform when the host runs out of memory.
OOM_SCORE_ADJ = 500
#: The embedded DNS server forwards names it does not know from the host's network
#: unless the container names its own resolver (CVE-2024-29018): name one that is not there.
DNS = ["127.0.0.1"]
#: ...and a name that is not found fails in about a second, not ten.
DNS_OPTIONS = ["timeout:1", "attempts:1"]
SYSCTLS = {"net.ipv6.conf.all.disable_ipv6": "1"}
AGENT_START_S = 30.0
REMOVE_S = 30.0
#: Statuses of a container that is, or is about to be, running.
LIVE = ("running", "created", "restarting")

NO_IMAGE = "The sandbox image {image} is missing: build the images with `make images`."
AGENT_EXITED = "The sandbox container exited (status {status}) before its agent answered. Its last lines:\n{logs}"
AGENT_SILENT = "The sandbox agent did not start within {seconds:.0f} s. The container's last lines:\n{logs}"


def image_require(client: docker.DockerClient, broker: str) -> str:
    """The broker's image, which this project builds (``make images``); RuntimeError saying so when it is missing."""
    image = image_ref(broker)
    try:
        client.images.get(image)
    except ImageNotFound:
        raise RuntimeError(NO_IMAGE.format(image=image)) from None
    return image


def container_spec(
    *,
    image: str,
    name: str,
    broker: str,
    labels: dict[str, str],
    network: str,
    unit_dir: Path,
    cell_uid: int,
    socket_gid: int | None,
    disk_mb: int,
    memory_mb: int,
    pids: int,
    cpus: float,
) -> dict[str, Any]:
    """The arguments of ``client.containers.create`` for a unit: its agent's command, its hardening and its limits."""
    command = [
        "--unit-dir", UNIT_DIR, "--broker", broker, "--cell-uid", str(cell_uid),
        "--broker-user", BROKER_USER, "--cell-confinement", "setpriv", "--disk-mb", str(disk_mb),
    ]  # fmt: skip
    if socket_gid is not None:
        # The agent is the container's root, with CAP_CHOWN: the platform's group on the host opens its socket.
        command += ["--socket-group", str(socket_gid)]
    return {
        "image": image,
        "command": command,
        "name": name,
        "labels": labels,
        "network": network,
        "dns": DNS,
        "dns_opt": DNS_OPTIONS,
        "sysctls": SYSCTLS,
        "user": "0:0",
        "cap_drop": ["ALL"],
        "cap_add": list(CAPABILITIES),
        "security_opt": ["no-new-privileges:true"],
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={TMP_MB}m,mode=1777"},
        "mounts": [Mount(target=UNIT_DIR, source=str(unit_dir), type="bind", read_only=False)],
        "mem_limit": f"{memory_mb}m",
        "memswap_limit": f"{memory_mb}m",
        "pids_limit": pids,
        "nano_cpus": int(cpus * 1e9),
        "ulimits": [Ulimit(name="nofile", soft=NOFILE, hard=NOFILE)],
        "oom_score_adj": OOM_SCORE_ADJ,
        "ipc_mode": "private",
        "init": True,
        "log_config": LogConfig(type="json-file", config={"max-size": "1m", "max-file": "2"}),
    }


def container_wait_for_agent(container: Container, socket: Path) -> None:
    """Return once the agent listens on ``socket``; raise when the container exits first or never gets there."""
    deadline = time.monotonic() + AGENT_START_S
    while not socket.exists():
        container.reload()
        if container.status not in LIVE:
            status = container.attrs.get("State", {}).get("ExitCode")
            raise RuntimeError(AGENT_EXITED.format(status=status, logs=container_logs(container)))
        if time.monotonic() > deadline:
            raise RuntimeError(AGENT_SILENT.format(seconds=AGENT_START_S, logs=container_logs(container)))
        time.sleep(0.05)


def container_logs(container: Container) -> str:
    """The container's last lines, for an error message."""
    try:
        return container.logs(tail=20).decode(errors="replace")
    except DockerException:
        return "(no logs)"


def container_remove(container: Container) -> None:
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
