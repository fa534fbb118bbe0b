"""What the docker backend owns: the labels on each unit's container and network, and looking them up by name.

Every container and network carries labels naming this platform instance, the unit, its
sandbox, owner and broker, and a fixed name derived from the unit's: starting looks up
before it creates, and reconciliation finds all it owns. One of the same name that is not
ours is left alone, or refused where it would stand in a unit's way.
"""

from __future__ import annotations

from typing import Any

from docker.errors import NotFound
from docker.models.containers import Container
from docker.models.networks import Network

from .base import UnitSpec

LABEL_INSTANCE = "org.broker-academy.instance"
LABEL_UNIT = "org.broker-academy.unit"
LABEL_SANDBOX = "org.broker-academy.sandbox"
LABEL_OWNER = "org.broker-academy.owner"
LABEL_BROKER = "org.broker-academy.broker"

FOREIGN = "A {what} named {name!r} exists but does not belong to this platform instance ({instance}); remove or rename it."


def unit_labels(*, instance: str, unit: UnitSpec) -> dict[str, str]:
    """The labels of the unit's container and network."""
    return {
        LABEL_INSTANCE: instance,
        LABEL_UNIT: unit.name,
        LABEL_SANDBOX: unit.name.rpartition("-")[2],
        LABEL_OWNER: unit.owner,
        LABEL_BROKER: unit.broker,
    }


def label_filters(*, instance: str, unit: str | None = None) -> dict[str, Any]:
    """The engine's filter for everything of this instance (or of one of its units)."""
    labels = [f"{LABEL_INSTANCE}={instance}"]
    if unit is not None:
        labels.append(f"{LABEL_UNIT}={unit}")
    return {"label": labels}


def is_ours(obj: Container | Network, *, instance: str, unit: str) -> bool:
    labels = obj.attrs.get("Config", {}).get("Labels") if isinstance(obj, Container) else obj.attrs.get("Labels")
    labels = labels or {}
    return labels.get(LABEL_INSTANCE) == instance and labels.get(LABEL_UNIT) == unit


def get_ours(collection: Any, object_name: str, *, instance: str, unit: str, what: str, foreign_is_error: bool) -> Any:
    """The unit's container or network called ``object_name`` from ``collection`` (``client.containers`` or
    ``client.networks``), or None; one of that name that is not ours is None too, or refused (RuntimeError)."""
    try:
        found = collection.get(object_name)
    except NotFound:
        return None
    if not is_ours(found, instance=instance, unit=unit):
        if foreign_is_error:
            raise RuntimeError(FOREIGN.format(what=what, name=object_name, instance=instance))
        return None
    return found
