"""A sandbox whose provision task was lost is started by the next reconcile, not failed minutes later.

A worker killed with the task prefetched, or a Redis that restarted empty, leaves a record
``requested`` with nothing on its way to start it. Reconcile (every 30 s on beat) sends the task
again once the record has waited REQUEUE_AFTER_S; before, it waited for the stuck cutoff
(PROVISION_TIMEOUT_S + 30 = 180 s) and was then failed ("the start was interrupted").
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sandboxes.backends import get_backend
from sandboxes.models import Sandbox, State
from sandboxes.services import jobs
from sandboxes.services.reconcile import REQUEUE_AFTER_S, sandboxes_reconcile
from tests.services import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def requested_long_ago(learner, broker: str) -> Sandbox:
    """A record as ensure makes it, REQUEUE_AFTER_S and more old, whose task never reached a worker."""
    sandbox = Sandbox.objects.create(user=learner, broker=broker, state=State.REQUESTED, stage="requested")
    Sandbox.objects.filter(pk=sandbox.pk).update(created_at=timezone.now() - timedelta(seconds=REQUEUE_AFTER_S + 5))
    return sandbox


def test_a_requested_sandbox_whose_task_was_lost_is_started_by_the_next_reconcile(celery_worker, learner, units_cleanup):
    lost = requested_long_ago(learner, "nats")
    report = sandboxes_reconcile()
    assert report["requeued"] == [lost.pk] and report["stuck"] == [], report
    wait_for(lambda: Sandbox.objects.get(pk=lost.pk).state == State.READY, timeout=120, what="the lost sandbox ready")


def test_a_task_that_was_only_late_and_its_resend_start_one_unit(celery_worker, learner, units_cleanup):
    """Sent twice (the first one late, not lost): one unit, ready, nothing failed."""
    late = requested_long_ago(learner, "nats")
    jobs.job_enqueue(jobs.PROVISION, late.pk)
    assert sandboxes_reconcile()["requeued"] == [late.pk]
    wait_for(lambda: Sandbox.objects.get(pk=late.pk).state == State.READY, timeout=120, what="the late sandbox ready")
    late.refresh_from_db()
    assert late.error == ""
    assert [name for name in get_backend().list_units() if name == late.unit] == [late.unit]
