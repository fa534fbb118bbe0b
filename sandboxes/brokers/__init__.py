"""The broker kinds a sandbox can run, by name: adding one is one module and one line here.

Plain standard library only; each kind's module is imported on first use, so a
unit running NATS never imports the Kafka client.
"""

from __future__ import annotations

import functools
import importlib

from sandboxes.brokers.base import BrokerKind

BROKERS: dict[str, str] = {
    "kafka": "sandboxes.brokers.kafka.kind.Kafka",
    "rabbitmq": "sandboxes.brokers.rabbitmq.kind.RabbitMQ",
    "nats": "sandboxes.brokers.nats.kind.Nats",
    "activemq": "sandboxes.brokers.activemq.kind.ActiveMQ",
}


class UnknownBroker(LookupError):
    """A broker name that is not in :data:`BROKERS`."""


def broker_names() -> list[str]:
    """The names of all broker kinds, in registry order."""
    return list(BROKERS)


@functools.cache
def get_broker(name: str) -> BrokerKind:
    """Return the (shared) instance of the broker kind called ``name``.

    Raises :class:`UnknownBroker` naming the known kinds.
    """
    try:
        path = BROKERS[name]
    except KeyError:
        raise UnknownBroker(f"unknown broker {name!r}; known: {', '.join(BROKERS)}") from None
    module_name, _, class_name = path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, BrokerKind)) or cls.name != name:
        raise TypeError(f"{path} is not the BrokerKind for {name!r}")
    return cls()


__all__ = ["BROKERS", "UnknownBroker", "broker_names", "get_broker"]
