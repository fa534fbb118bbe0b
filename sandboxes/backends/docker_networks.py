"""Each docker unit's private network: internal, with no address of the host on its bridge.

A cell then reaches its own broker on localhost and nothing else: not another unit, not
the host's services, not the internet. Made before the container that joins it, removed
after; a container still attached when the network goes is detached.
"""

from __future__ import annotations

import contextlib
import time

import docker
from docker.errors import APIError, NotFound
from docker.models.networks import Network

from .docker_containers import REMOVE_S
from .docker_labels import get_ours, label_filters

#: The bridge of a unit's network gets no address: the host is then not reachable through it.
NETWORK_OPTIONS = {"com.docker.network.bridge.inhibit_ipv4": "true"}


def network_name(unit: str) -> str:
    return f"{unit}-net"


def network_lookup(client: docker.DockerClient, *, instance: str, unit: str, foreign_is_error: bool = False) -> Network | None:
    """The unit's network by its fixed name, or None; one of that name that is not ours is left alone (or refused)."""
    found: Network | None = get_ours(
        client.networks, network_name(unit), instance=instance, unit=unit, what="network", foreign_is_error=foreign_is_error
    )
    return found


def unit_networks(client: docker.DockerClient, *, instance: str, unit: str) -> list[Network]:
    """Every network of the unit: by its labels, and by its name."""
    found = {n.id: n for n in client.networks.list(filters=label_filters(instance=instance, unit=unit))}
    named = network_lookup(client, instance=instance, unit=unit)
    if named is not None:
        found[named.id] = named
    return list(found.values())


def network_ensure(client: docker.DockerClient, *, instance: str, unit: str, labels: dict[str, str]) -> Network:
    """The unit's network, made now unless it exists (one of that name that is not ours is refused)."""
    existing = network_lookup(client, instance=instance, unit=unit, foreign_is_error=True)
    if existing is not None:
        return existing
    name = network_name(unit)
    try:
        return client.networks.create(
            name, driver="bridge", internal=True, labels=labels, options=NETWORK_OPTIONS, check_duplicate=True
        )
    except APIError as exc:
        if exc.status_code != 409:
            raise
        return client.networks.get(name)  # created by a concurrent start


def network_remove(network: Network) -> None:
    """Remove the network, detaching what is still attached; gone already is success."""
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
