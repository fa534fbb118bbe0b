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
    ``memory_mb`` is what one running unit of the kind costs the machine (broker, agent
    and a running cell, resident): the weight admission spends of the platform's
    capacity (``sandboxes/services/admission.py``). ``idle_mb`` is what an idle unit holds, as
    bench/sandboxes.py measures it (``sandbox.process.<broker>.idle_rss_mb``): what the warm pool's
    memory budget counts for each unit it keeps (``sandboxes/services/pool.py``). The difference
    is a running cell's process and a broker holding messages. ActiveMQ's web console, in the
    broker's JVM, adds about 50 MiB to an idle unit and 80 MiB once its pages have been compiled
    (measured on the process backend: 151 → 198 → 232 MiB), well inside its 768.
    """

    kind: str  # dotted path of the BrokerKind subclass
    label: str
    short: str = ""
    memory_mb: int = 512
    idle_mb: int = 500


BROKERS: dict[str, Broker] = {
    "kafka": Broker("sandboxes.brokers.kafka.Kafka", gettext_noop("Apache Kafka"), "Kafka", memory_mb=1024, idle_mb=600),
    "rabbitmq": Broker("sandboxes.brokers.rabbitmq.RabbitMQ", gettext_noop("RabbitMQ"), memory_mb=384, idle_mb=250),
    "nats": Broker("sandboxes.brokers.nats.Nats", gettext_noop("NATS"), memory_mb=160, idle_mb=80),
    "activemq": Broker("sandboxes.brokers.activemq.ActiveMQ", gettext_noop("ActiveMQ"), memory_mb=768, idle_mb=450),
    "redis": Broker("sandboxes.brokers.redis_streams.Redis", gettext_noop("Redis Streams"), "Redis", memory_mb=160, idle_mb=40),
    # Three JVMs of ~160 MiB heap each: about 500 MiB resident when idle (measured), twice that with traffic.
    "kafka-cluster": Broker(
        "sandboxes.brokers.kafka_cluster.KafkaCluster",
        gettext_noop("Кластер Kafka"),
        gettext_noop("Kafka ×3"),
        memory_mb=1536,
        idle_mb=500,
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
