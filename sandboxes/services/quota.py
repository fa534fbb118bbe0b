"""The per-user quota of running sandboxes: a learner's own and the throwaway brokers of their exercise proofs.

An instructor's proof (Purpose.VERIFY, provisioning.sandbox_scratch) runs a broker of its own
for them: it counts against the same SANDBOX_QUOTA_PER_USER as their learner sandboxes, so
proofs cannot start more brokers for one person than the sandbox bar can.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils.translation import gettext_lazy

from courseplatform.metrics import refusal_count

from ..models import ACTIVE_STATES, Purpose, Sandbox
from .lifecycle import SandboxError

QUOTA_REACHED = gettext_lazy("Запущено песочниц: {n} — это предел. Остановите одну из них, чтобы запустить новую.")

#: The purposes whose sandboxes are someone's (pooled ones belong to nobody yet).
COUNTED = (Purpose.LEARNER, Purpose.VERIFY)


def sandboxes_held(*, user_id: int) -> int:
    return Sandbox.objects.filter(user_id=user_id, state__in=ACTIVE_STATES, purpose__in=COUNTED).count()


def quota_check(*, user_id: int) -> None:
    """Raises SandboxError (the learner's message) when the user already holds as many sandboxes as they may."""
    held = sandboxes_held(user_id=user_id)
    if held >= settings.SANDBOX_QUOTA_PER_USER:
        refusal_count(reason="quota", user_id=user_id, running=held)
        raise SandboxError(QUOTA_REACHED.format(n=held))


@transaction.atomic
def sandbox_create_within_quota(*, user_id: int, **fields: object) -> Sandbox:
    """A new sandbox record of the user's, if their quota allows; the user's row is locked meanwhile, so
    two proofs started at once by the worker cannot both take the last place."""
    User.objects.select_for_update().filter(pk=user_id).first()
    quota_check(user_id=user_id)
    return Sandbox.objects.create(user_id=user_id, **fields)
