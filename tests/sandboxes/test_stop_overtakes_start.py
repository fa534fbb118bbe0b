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


def agent_killed_before_it_is_up(backend, monkeypatch, stop) -> None:
    """Make start() meet a stop while it waits for the agent: on the wait's first look, ``stop`` runs
    (as the stop's worker would, finding no agent.pid yet and killing the unit's processes)."""
    real_agent_pid = type(backend)._agent_pid
    calls = {"n": 0, "stopping": False}

    def agent_pid(self, name):
        calls["n"] += 1
        # Call 1 is start()'s "already running?" check; call 2 is the first look of its wait.
        if calls["n"] == 2 and not calls["stopping"]:
            calls["stopping"] = True
            stop(name)
            return None
        return None if calls["stopping"] and calls["n"] <= 2 else real_agent_pid(self, name)

    monkeypatch.setattr(type(backend), "_agent_pid", agent_pid)


def test_a_start_whose_agent_a_stop_killed_says_so_at_once_instead_of_waiting_for_it(units_cleanup, monkeypatch):
    from sandboxes.backends.base import UnitSpec
    from sandboxes.backends.process import AgentExited

    backend = get_backend()
    name = f"{backend.instance}-990001"
    agent_killed_before_it_is_up(backend, monkeypatch, backend.stop)
    # Without the check the wait goes on for AGENT_START_S (30 s) and ends in a plain RuntimeError.
    with pytest.raises(AgentExited):
        backend.start(UnitSpec(name=name, broker="nats", owner="1"))
    backend.stop(name)
    assert name not in backend.list_units()


def test_a_stop_that_kills_a_starting_agent_ends_the_start_quietly_with_no_unit_left(learner, units_cleanup, monkeypatch):
    sandbox = Sandbox.objects.create(user=learner, broker="nats", purpose=Purpose.LEARNER, state=State.REQUESTED)
    backend = get_backend()

    def stop_worker(name):
        stopping = Sandbox.objects.get(pk=sandbox.pk)
        sandbox_transition(stopping, State.STOPPING)
        backend.stop(name)
        sandbox_transition(stopping, State.STOPPED)

    agent_killed_before_it_is_up(backend, monkeypatch, stop_worker)
    provisioning.sandbox_provision_start(sandbox_id=sandbox.pk)
    after = Sandbox.objects.get(pk=sandbox.pk)
    assert (after.state, after.error) == (State.STOPPED, "")
    assert after.unit not in backend.list_units()
