"""How much memory one sandbox unit of a broker kind is given: what is reserved for it, and its wall.

The reservation is the kind's ``memory_mb`` in the registry (sandboxes/brokers/__init__.py): what one
running unit costs, resident (broker, agent, a running cell), the same figure admission spends of
SANDBOX_CAPACITY_MB. A cluster's scheduler packing nodes by it agrees with the learners' queue.

The wall is where the kernel kills: it must sit above everything the unit may grow to while its
broker still pushes back on its own (JVM heap, Erlang's watermark, JetStream's memory store and
Redis' maxmemory are all set from :class:`BrokerLimits`' ``memory_mb``), so it is the larger of
the kind's weight and that bound with the agent beside it, plus room for a cell at work.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandboxes.brokers import broker_entry
from sandboxes.brokers.base import BrokerLimits

#: The agent and its cell template, resident, with room: in a NATS pod, agent, template and
#: nats-server together measured 85 MB idle (docs/bench.md), the server about 20 of it.
AGENT_MB = 96
#: One cell at work: a Python interpreter with a broker's client library and the data it holds
#: (a kafka-python producer cell is ~45 MB resident), with room for a learner's larger batch.
CELL_MB = 256


@dataclass(frozen=True, slots=True)
class UnitMemory:
    """A unit's memory in MiB: ``request_mb`` reserved for it, ``limit_mb`` its wall (never below the request)."""

    request_mb: int
    limit_mb: int


def unit_memory(broker: str) -> UnitMemory:
    """The memory of one unit of ``broker``; raises UnknownBroker for a kind not in the registry."""
    weight = broker_entry(broker).memory_mb
    broker_bound = BrokerLimits().memory_mb
    return UnitMemory(request_mb=weight, limit_mb=max(weight, broker_bound + AGENT_MB) + CELL_MB)
