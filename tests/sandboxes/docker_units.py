"""A docker unit as the engine holds it, inspected: what of it is left, and how its container is hardened.

Shared by the docker backend's own tests and the backend-parametrized ones (tests/sandboxes/backends_under_test.py).
"""

from __future__ import annotations

from pathlib import Path

import docker
from django.conf import settings as django_settings

from sandboxes.backends import disks, get_backend
from sandboxes.backends.docker_containers import CAPABILITIES
from sandboxes.backends.docker_labels import LABEL_BROKER, LABEL_INSTANCE, LABEL_OWNER, LABEL_SANDBOX, LABEL_UNIT
from sandboxes.images import SOURCE_LABEL, UNIT_DIR
from sandboxes.models import Sandbox


def leftovers(client: docker.DockerClient, unit: str) -> dict[str, list[str]]:
    """What of a unit still exists, by kind (empty once it is gone): containers and networks (by label or by name),
    and its folder and disk image on the host."""
    labelled = {"label": [f"{LABEL_INSTANCE}={django_settings.SANDBOX_INSTANCE}", f"{LABEL_UNIT}={unit}"]}
    found = {
        "containers": sorted(
            {c.name for c in client.containers.list(all=True, filters=labelled)}
            | {c.name for c in client.containers.list(all=True) if c.name == unit}
        ),
        "networks": sorted(
            {n.name for n in client.networks.list(filters=labelled)}
            | {n.name for n in client.networks.list() if n.name == f"{unit}-net"}
        ),
        "folder": [str(p) for p in [Path(django_settings.SANDBOX_ROOT) / unit] if p.exists()],
        "disk image": [str(p) for p in [disks.image_path(Path(django_settings.SANDBOX_ROOT), unit)] if p.exists()],
    }
    return {kind: names for kind, names in found.items() if names}


def assert_hardened(client: docker.DockerClient, container, *, sandbox: Sandbox) -> None:
    """What every sandbox container must be: see sandboxes/backends/docker_containers.py for why each."""
    container.reload()
    host = container.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert sorted(host["CapAdd"]) == sorted(CAPABILITIES)
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Privileged"] is False
    assert host["PidsLimit"] == django_settings.SANDBOX_DOCKER_PIDS
    assert host["Memory"] == django_settings.SANDBOX_DOCKER_MEMORY_MB * 1024 * 1024
    assert host["MemorySwap"] == host["Memory"]  # no swap on top
    assert host["NanoCpus"] == int(django_settings.SANDBOX_DOCKER_CPUS * 1e9)
    assert host["ReadonlyRootfs"] is True
    assert set(host["Tmpfs"]) == {"/tmp"}
    # No published ports at all (one would have to be bound to 127.0.0.1).
    assert host["PublishAllPorts"] is False
    for bindings in list((host.get("PortBindings") or {}).values()) + list(
        (container.attrs["NetworkSettings"]["Ports"] or {}).values()
    ):
        assert all(b["HostIp"] == "127.0.0.1" for b in bindings or []), bindings
    # The one mount is the unit's folder; no Docker socket anywhere.
    mounts = container.attrs["Mounts"]
    assert [(m["Type"], m["Source"], m["Destination"]) for m in mounts] == [
        ("bind", str(Path(django_settings.SANDBOX_ROOT) / sandbox.unit), UNIT_DIR)
    ]
    assert not any("docker.sock" in str(m) for m in mounts + (host.get("Binds") or []))
    # One internal network of its own, labelled like the container.
    labels = {
        LABEL_INSTANCE: django_settings.SANDBOX_INSTANCE,
        LABEL_UNIT: sandbox.unit,
        LABEL_SANDBOX: str(sandbox.pk),
        LABEL_OWNER: str(sandbox.user_id),
        LABEL_BROKER: sandbox.broker,
    }
    assert container.name == sandbox.unit
    assert {k: container.labels.get(k) for k in labels} == labels
    assert container.labels[SOURCE_LABEL]  # from the image: which sources it was built from
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [f"{sandbox.unit}-net"]
    network = client.networks.get(f"{sandbox.unit}-net")
    assert network.attrs["Internal"] is True
    assert network.attrs["Labels"] == labels
    assert network.attrs["Options"].get("com.docker.network.bridge.inhibit_ipv4") == "true"
    # Only docker-init and the agent run as root (with the capabilities above); the broker and cells do not.
    uids = {}
    for pid in get_backend().processes(sandbox.unit):
        status = Path(f"/proc/{pid}/status").read_text()
        uids[pid] = (int(status.split("Uid:")[1].split()[0]), Path(f"/proc/{pid}/comm").read_text().strip())
    assert sum(1 for uid, _ in uids.values() if uid == 0) == 2, uids
    assert len(uids) >= 3, uids
