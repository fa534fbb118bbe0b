"""A reset through the real worker: the learner's old broker goes, a fresh one of the same kind comes up."""

from __future__ import annotations

import pytest

from sandboxes.backends import get_backend
from sandboxes.models import Sandbox, State
from sandboxes.services import actions
from tests.sandboxes.test_lifecycle import provision, run_cell, running
from tests.services import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_reset_stops_the_old_unit_and_brings_up_a_fresh_sandbox_that_runs_cells(celery_worker, learner, units_cleanup):
    old = provision(learner, "nats")
    backend = get_backend()
    pids = backend.processes(old.unit)
    assert actions.sandbox_reset(user_id=learner.pk, broker="nats") is not None

    def fresh() -> Sandbox | None:
        return Sandbox.objects.filter(user=learner, broker="nats", state=State.READY).exclude(pk=old.pk).first()

    wait_for(lambda: fresh() is not None, timeout=120, what="a fresh nats sandbox ready")
    new = fresh()
    assert new is not None
    old.refresh_from_db()
    assert old.state == State.STOPPED
    assert new.unit != old.unit and old.unit not in backend.list_units()
    assert [p for p in pids if running(p)] == []
    result, output = run_cell(new, "import os; print(os.environ['NATS_URL'])")
    assert result["status"] == 0 and "nats://" in output, output
