"""The sandbox state machine: a table of which state may follow which, and the one way a state changes.

Every change of state goes through ``sandbox_transition``: a conditional UPDATE
that the database refuses when another request moved the row on, then a
broadcast to the learner's pages.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy

from ..models import Sandbox, State
from ..payloads import sandbox_payload
from . import jobs

log = logging.getLogger(__name__)

UNKNOWN_BROKER = gettext_lazy("Неизвестный брокер: {broker}.")

#: Which state may follow which; anything else is a bug and is refused.
TRANSITIONS: dict[str, set[str]] = {
    State.REQUESTED: {State.PROVISIONING, State.STOPPING, State.FAILED, State.STOPPED},
    State.PROVISIONING: {State.READY, State.STOPPING, State.FAILED, State.STOPPED},
    State.READY: {State.STOPPING, State.FAILED, State.STOPPED, State.PROVISIONING},
    State.STOPPING: {State.STOPPED, State.FAILED},
    State.STOPPED: set(),
    State.FAILED: {State.STOPPING, State.STOPPED},
}


class SandboxError(Exception):
    """A learner-facing error about sandboxes."""


class TransitionRefused(SandboxError):
    """The sandbox is no longer in a state the asked-for one may follow (another request moved it on)."""


def unit_name(sandbox: Sandbox) -> str:
    """The unit's fixed name: the same sandbox always maps to the same unit."""
    return f"{settings.SANDBOX_INSTANCE}-{sandbox.pk}"


def sandbox_broadcast(sandbox: Sandbox) -> None:
    """Tell the owner's open pages the sandbox's state (a pooled sandbox has nobody to tell)."""
    layer = get_channel_layer()
    if layer is None or sandbox.user_id is None:
        return
    # Source text on the wire: the consumer of each page translates it for its reader.
    with translation.override(None):
        payload = sandbox_payload(sandbox)
    try:
        async_to_sync(layer.group_send)(f"user-{sandbox.user_id}", {"type": "sandbox.state", "sandbox": payload})
    except Exception:  # a page not hearing a state is not worth failing the task for
        log.warning("could not broadcast sandbox state", extra={"sandbox_id": sandbox.pk}, exc_info=True)


def sandbox_transition(sandbox: Sandbox, state: str, *, stage: str | None = None, error: str = "") -> Sandbox:
    """Move to ``state``, save, and tell the learner's pages; raises TransitionRefused if the row moved on.

    One conditional UPDATE: the row changes only if the database (not this possibly stale copy)
    holds a state from which ``state`` is allowed, so a late provisioning step can never write
    READY over a stop that happened meanwhile. Only the fields a transition owns are written.
    """
    sources = {source for source, targets in TRANSITIONS.items() if state in targets} | {state}
    now = timezone.now()
    fields: dict[str, Any] = {"state": state, "stage": stage if stage is not None else state, "error": error}
    # Set by the caller for this very transition (the unit's name when provisioning starts, the connection when ready).
    fields.update(unit=sandbox.unit, connection=sandbox.connection)
    if state == State.READY:
        fields["ready_at"] = now
        # A pooled sandbox has nobody to be idle for; its clock starts when a learner claims it.
        fields["expires_at"] = now + timedelta(seconds=settings.SANDBOX_IDLE_TIMEOUT_S) if sandbox.user_id else None
    if state in (State.STOPPED, State.FAILED):
        fields["stopped_at"] = now
    if not Sandbox.objects.filter(pk=sandbox.pk, state__in=sources).update(**fields):
        current = Sandbox.objects.filter(pk=sandbox.pk).values_list("state", flat=True).first()
        raise TransitionRefused(f"sandbox {sandbox.pk}: {current} -> {state} is not allowed")
    for field, value in fields.items():
        setattr(sandbox, field, value)
    log.info(
        "sandbox %s %s: %s",
        sandbox.pk,
        sandbox.broker,
        fields["stage"] if state == State.PROVISIONING else state,
        extra={"sandbox_id": sandbox.pk, "user_id": sandbox.user_id, "state": state, "stage": fields["stage"]},
    )
    sandbox_broadcast(sandbox)
    if state in (State.STOPPED, State.FAILED):
        # Capacity came back: whoever waits in the admission queue may start (services/admission.py).
        transaction.on_commit(partial(jobs.job_nudge, jobs.ADMIT))
    return sandbox
