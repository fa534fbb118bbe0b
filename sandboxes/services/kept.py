"""Kept state: a learner's broker data outlives the stop of its sandbox, and the next start of that broker resumes it.

A stop (by the learner or at the idle timeout) keeps the unit's data under a key of the learner
and broker kind (``KeptState``), within SANDBOX_KEPT_QUOTA_MB per learner; the next start of the
same kind runs on it, and so does not take a unit from the warm pool (a pooled unit already runs
on an empty disk). A reset and a discard give a fresh broker. A record that goes (discard, quota,
account deletion) takes its data with it once the transaction commits.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext_lazy, gettext_noop

from sandboxes.brokers import BROKERS

from ..backends import get_backend
from ..models import ACTIVE_STATES, KeptState, Purpose, Sandbox
from ..payloads import kept_payload
from .lifecycle import SandboxError, unit_name

log = logging.getLogger(__name__)

IN_USE = gettext_lazy(
    "Сохранённые данные сейчас в работе у запущенного брокера. Остановите его — или сбросьте, чтобы начать с чистого листа."
)
# Sent as source text with their parameters; each page's consumer translates, then fills them in.
NOT_KEPT_QUOTA = gettext_noop(
    "Данные брокера {broker} не сохранены: они занимают {size} МБ, а места для сохранённых данных — {quota} МБ."
)
DROPPED_OLDEST = gettext_noop(
    "Чтобы сохранить данные брокера {broker}, удалены более старые сохранённые данные брокера {dropped}."
)

MB = 1024 * 1024


def kept_key(*, user_id: int, broker: str) -> str:
    """The backend's name of a learner's kept data of one broker kind: one slot per learner and kind."""
    return f"{settings.SANDBOX_INSTANCE}-u{user_id}-{broker}"


def kept_for_start(*, user_id: int, broker: str) -> KeptState | None:
    """The learner's kept data of ``broker`` that a new sandbox may start on, or None.

    A record whose data is gone (a start on it failed and took it along) is forgotten here.
    """
    kept = KeptState.objects.filter(user_id=user_id, broker=broker).first()
    if kept is None:
        return None
    if kept.sandbox_id is not None and Sandbox.objects.filter(pk=kept.sandbox_id, state__in=ACTIVE_STATES).exists():
        return None  # a running sandbox holds it
    if not get_backend().kept_exists(kept.key):
        log.info("kept data gone; forgetting it", extra={"user_id": user_id, "broker": broker})
        kept.delete()
        kept_broadcast(user_id=user_id)
        return None
    return kept


def kept_claim(*, kept: KeptState, sandbox: Sandbox) -> None:
    """Record that ``sandbox`` starts on ``kept`` (inside the transaction that creates the sandbox)."""
    KeptState.objects.filter(pk=kept.pk).update(sandbox=sandbox)


def kept_restore_key(*, sandbox: Sandbox) -> str:
    """The key of the kept data ``sandbox`` starts on; empty for a fresh broker."""
    return KeptState.objects.filter(sandbox=sandbox).values_list("key", flat=True).first() or ""


def sandbox_unit_release(*, sandbox: Sandbox, keep: bool) -> None:
    """Stop the sandbox's unit; with ``keep`` a learner's broker data is kept for its next start.

    Kept: the data of a learner's sandbox that became ready or started on kept data. Past the
    learner's quota, their oldest other kept data is dropped to make room; data larger than the
    quota alone is not kept. Either is told to the learner's pages.
    """
    backend = get_backend()
    name = sandbox.unit or unit_name(sandbox)
    user_id = sandbox.user_id
    restoring = KeptState.objects.filter(sandbox=sandbox).first()
    worth_keeping = sandbox.ready_at is not None or restoring is not None
    if not (keep and user_id is not None and sandbox.purpose == Purpose.LEARNER and worth_keeping):
        backend.stop(name)
        if restoring is not None:
            restoring.delete()  # its data lived in the unit, and went with it
            kept_broadcast(user_id=restoring.user_id)
        return
    key = kept_key(user_id=user_id, broker=sandbox.broker)
    size = backend.stop_keeping(name, key=key)
    if size is None:
        KeptState.objects.filter(user_id=user_id, broker=sandbox.broker).delete()
        kept_broadcast(user_id=user_id)
        return
    quota = settings.SANDBOX_KEPT_QUOTA_MB * MB
    if size > quota:
        backend.discard_kept(key)
        KeptState.objects.filter(user_id=user_id, broker=sandbox.broker).delete()
        log.info("kept data over the quota; not kept", extra={"sandbox_id": sandbox.pk, "user_id": user_id, "bytes": size})
        kept_broadcast(
            user_id=user_id,
            message=NOT_KEPT_QUOTA,
            params={"broker": BROKERS[sandbox.broker].label, "size": -(-size // MB), "quota": settings.SANDBOX_KEPT_QUOTA_MB},
        )
        return
    others = list(
        KeptState.objects.filter(user_id=user_id, sandbox__isnull=True).exclude(broker=sandbox.broker).order_by("saved_at")
    )
    dropped = []
    while others and size + sum(o.size_bytes for o in others) > quota:
        oldest = others.pop(0)
        oldest.delete()
        dropped.append(oldest.broker)
        log.info("oldest kept data dropped for the quota", extra={"user_id": user_id, "broker": oldest.broker})
    KeptState.objects.update_or_create(
        user_id=user_id,
        broker=sandbox.broker,
        defaults={"key": key, "size_bytes": size, "saved_at": timezone.now(), "sandbox": None},
    )
    log.info("sandbox data kept", extra={"sandbox_id": sandbox.pk, "user_id": user_id, "bytes": size})
    if dropped:
        kept_broadcast(
            user_id=user_id,
            message=DROPPED_OLDEST,
            params={"broker": BROKERS[sandbox.broker].label, "dropped": ", ".join(BROKERS[b].label for b in dropped)},
        )
    else:
        kept_broadcast(user_id=user_id)


def kept_discard(*, user_id: int, broker: str) -> None:
    """Forget the learner's kept data of ``broker`` (their next start is a fresh broker); none kept is fine.

    Raises SandboxError while a running sandbox holds the data (a reset is the way to a fresh broker then).
    """
    kept = KeptState.objects.filter(user_id=user_id, broker=broker).first()
    if kept is None:
        return
    if kept.sandbox_id is not None and Sandbox.objects.filter(pk=kept.sandbox_id, state__in=ACTIVE_STATES).exists():
        raise SandboxError(IN_USE)
    kept.delete()
    kept_broadcast(user_id=user_id)


def kept_states_of(*, user_id: int) -> dict[str, dict[str, Any]]:
    """The learner's kept data by broker, as pages see it."""
    return kept_payload(KeptState.objects.filter(user_id=user_id).select_related("sandbox"))


def kept_broadcast(*, user_id: int, message: str = "", params: dict[str, Any] | None = None) -> None:
    """Tell the learner's open pages what is kept now, with a message (source text and its parameters) if any."""
    layer = get_channel_layer()
    if layer is None:
        return
    event = {"type": "sandbox.kept", "kept": kept_states_of(user_id=user_id), "message": message, "params": params or {}}
    try:
        async_to_sync(layer.group_send)(f"user-{user_id}", event)
    except Exception:  # a page not hearing of it is not worth failing a stop for
        log.warning("could not broadcast kept state", extra={"user_id": user_id}, exc_info=True)


@receiver(post_delete, sender=KeptState)
def kept_data_delete(sender: type[KeptState], instance: KeptState, **_: object) -> None:
    """A record that goes (discarded, dropped for the quota, its account deleted) takes its data along, once committed."""
    key = instance.key
    transaction.on_commit(lambda: get_backend().discard_kept(key))
