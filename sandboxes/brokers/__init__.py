"""The broker kinds a sandbox can run, by name: adding one is one module and one line here.

This registry is the one list of brokers: course files, the models, the pages
(labels included), the image build and the agent all ask it, so nothing else
names a broker. Plain standard library only; each kind's module is imported on
first use, so a unit running NATS never imports the Kafka client, and the web
side reads names and labels without importing any kind.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass

from sandboxes.brokers.base import BrokerKind


def gettext_noop(message: str) -> str:
    """Mark a label for makemessages; the page translates it where it is shown (Django is not here)."""
    return message


@dataclass(frozen=True, slots=True)
class Broker:
    """One line of the registry: where the kind lives and what people call it.

    ``label`` is the product's name as pages show it (a msgid: the web side passes
    it through gettext), ``short`` the form for tabs and badges (the label when empty).
    """

    kind: str  # dotted path of the BrokerKind subclass
    label: str
    short: str = ""


BROKERS: dict[str, Broker] = {
    "kafka": Broker("sandboxes.brokers.kafka.Kafka", gettext_noop("Apache Kafka"), "Kafka"),
    "rabbitmq": Broker("sandboxes.brokers.rabbitmq.RabbitMQ", gettext_noop("RabbitMQ")),
    "nats": Broker("sandboxes.brokers.nats.Nats", gettext_noop("NATS")),
    "activemq": Broker("sandboxes.brokers.activemq.ActiveMQ", gettext_noop("ActiveMQ")),
    "redis": Broker("sandboxes.brokers.redis_streams.Redis", gettext_noop("Redis Streams"), "Redis"),
    "kafka-cluster": Broker(
        "sandboxes.brokers.kafka_cluster.KafkaCluster", gettext_noop("Кластер Kafka"), gettext_noop("Kafka ×3")
    ),
}


class UnknownBroker(LookupError):
    """A broker name that is not in :data:`BROKERS`."""


def broker_names() -> list[str]:
    """The names of all broker kinds, in registry order."""
    return list(BROKERS)


def broker_entry(name: str) -> Broker:
    """The registry line of ``name``; raises :class:`UnknownBroker` naming the known kinds."""
    try:
        return BROKERS[name]
    except KeyError:
        raise UnknownBroker(f"unknown broker {name!r}; known: {', '.join(BROKERS)}") from None


@functools.cache
def get_broker(name: str) -> BrokerKind:
    """Return the (shared) instance of the broker kind called ``name``.

    Raises :class:`UnknownBroker` naming the known kinds.
    """
    path = broker_entry(name).kind
    module_name, _, class_name = path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, BrokerKind)) or cls.name != name:
        raise TypeError(f"{path} is not the BrokerKind for {name!r}")
    return cls()


__all__ = ["BROKERS", "Broker", "UnknownBroker", "broker_entry", "broker_names", "get_broker"]
