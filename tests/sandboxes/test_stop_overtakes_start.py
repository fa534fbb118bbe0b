"""A stop that comes while the unit is being started leaves no unit behind.

The stop's worker may run while another worker is inside ``backend.start``: it finds no unit to
remove and marks the sandbox stopped, and the start then makes a unit that no live sandbox owns
(seen in the WebSocket flood test, where stop and ensure alternate). The start removes it.
"""

from __future__ import annotations

import pytest

from sandboxes.backends import get_backend
from sandboxes.models import Purpose, Sandbox, State
from sandboxes.services import provisioning
from sandboxes.services.lifecycle import sandbox_transition

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_unit_started_after_its_sandbox_was_stopped_is_removed(learner, units_cleanup, monkeypatch):
    sandbox = Sandbox.objects.create(user=learner, broker="nats", purpose=Purpose.LEARNER, state=State.REQUESTED)
    backend = get_backend()
    real_start = type(backend).start

    def start_overtaken_by_a_stop(self, unit):
        # The stop's worker, while this one starts the unit (the interleaving made on purpose).
        stopped = Sandbox.objects.get(pk=sandbox.pk)
        sandbox_transition(stopped, State.STOPPING)
        self.stop(unit.name)  # nothing to remove yet
        sandbox_transition(stopped, State.STOPPED)
        real_start(self, unit)

    monkeypatch.setattr(type(backend), "start", start_overtaken_by_a_stop)
    provisioning.sandbox_provision_start(sandbox_id=sandbox.pk)
    after = Sandbox.objects.get(pk=sandbox.pk)
    assert after.state == State.STOPPED and after.unit
    assert after.unit not in get_backend().list_units()
