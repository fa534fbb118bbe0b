"""A sandbox pod's memory by broker kind: reserved as admission counts it, walled above what the kind grows to."""

from __future__ import annotations

import pytest

from sandboxes.backends.base import UnitSpec
from sandboxes.backends.kubernetes_manifests import pod_manifest
from sandboxes.backends.unit_memory import AGENT_MB, CELL_MB, unit_memory
from sandboxes.brokers import BROKERS
from sandboxes.brokers.base import BrokerLimits
from sandboxes.services.admission import broker_weight_mb


@pytest.mark.parametrize("broker", list(BROKERS))
def test_a_pod_reserves_what_admission_spends_and_its_wall_holds_the_broker_agent_and_a_cell(broker):
    memory = unit_memory(broker)
    assert memory.request_mb == broker_weight_mb(broker)
    assert memory.limit_mb >= BrokerLimits().memory_mb + AGENT_MB + CELL_MB
    assert memory.limit_mb >= memory.request_mb + CELL_MB
    pod = pod_manifest(unit=UnitSpec(name="ba-1", broker=broker), labels={}, image="i", memory=memory, cpus=1.0, disk_mb=256)
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["requests"]["memory"] == f"{memory.request_mb}Mi"
    assert resources["limits"]["memory"] == f"{memory.limit_mb}Mi"
