"""Reconcile racing a start: a sandbox started while reconcile runs keeps its unit.

Reconcile (run by every worker as it starts, and after crashes) compares the active records
with the units on the host and stops a unit without a record. It read the records first
and listed the units after, so a sandbox whose record and unit both appeared in between had
its new unit stopped: a learner's broker killed while it started. Listed first, every unit
seen already has its record (a record is written before its unit starts).
"""

from __future__ import annotations

import pytest

from sandboxes.backends import get_backend
from sandboxes.backends.base import UnitSpec
from sandboxes.models import Sandbox, State
from sandboxes.services import lifecycle, reconcile

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_sandbox_started_while_reconcile_runs_keeps_its_unit(learner, units_cleanup, monkeypatch):
    backend = get_backend()
    started: list[Sandbox] = []
    list_units = backend.list_units

    def a_start_lands_meanwhile() -> list[str]:
        # The interleaving on purpose: a learner's sandbox is recorded and its unit started
        # at the moment reconcile asks the host which units exist, as a provisioning task may.
        if not started:
            sandbox = Sandbox.objects.create(user=learner, broker="nats", state=State.PROVISIONING)
            backend.start(UnitSpec(name=lifecycle.unit_name(sandbox), broker="nats"))
            started.append(sandbox)
        return list_units()

    monkeypatch.setattr(backend, "list_units", a_start_lands_meanwhile)
    monkeypatch.setattr(reconcile, "get_backend", lambda: backend)
    report = reconcile.sandboxes_reconcile()
    (sandbox,) = started
    name = lifecycle.unit_name(sandbox)
    print(report)
    assert name not in report["orphans"], "reconcile took a unit started during its run for an orphan"
    assert backend.poll(name) is None, "the unit of a sandbox being started was stopped"
    sandbox.refresh_from_db()
    assert sandbox.state == State.PROVISIONING
    backend.stop(name)
