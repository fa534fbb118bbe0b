"""How pages see a sandbox: its state and stage labels, progress and error, in the reader's language.

Labels and errors are Russian source text: a worker broadcasts the source text,
and each page's consumer translates it for its reader (``sandbox_payload_localized``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.utils.translation import gettext, gettext_noop

from .models import ACTIVE_STATES, KeptState, Sandbox

STAGE_LABELS = {
    "requested": gettext_noop("в очереди на запуск"),
    "starting agent": gettext_noop("запуск песочницы"),
    "restoring": gettext_noop("возвращение сохранённых данных"),
    "preparing": gettext_noop("подготовка брокера"),
    "starting": gettext_noop("запуск брокера"),
    "waiting": gettext_noop("ожидание брокера"),
    "ready": gettext_noop("готово"),
    "stopping": gettext_noop("остановка"),
    "stopped": gettext_noop("остановлена"),
    "failed": gettext_noop("ошибка"),
}
STATE_LABELS = {
    "requested": gettext_noop("в очереди"),
    "provisioning": gettext_noop("запускается"),
    "ready": gettext_noop("готово"),
    "stopping": gettext_noop("останавливается"),
    "stopped": gettext_noop("остановлена"),
    "failed": gettext_noop("ошибка"),
}
STAGE_PROGRESS = {
    "requested": 0.05,
    "starting agent": 0.15,
    "restoring": 0.2,
    "preparing": 0.3,
    "starting": 0.5,
    "waiting": 0.7,
    "ready": 1.0,
}


def sandbox_payload(sandbox: Sandbox) -> dict[str, Any]:
    """The sandbox as pages see it, its labels and error in the active language."""
    return sandbox_payload_localized(
        {
            "id": sandbox.pk,
            "broker": sandbox.broker,
            "state": sandbox.state,
            "state_label": STATE_LABELS.get(sandbox.state, sandbox.state),
            "stage": sandbox.stage,
            "stage_label": STAGE_LABELS.get(sandbox.stage, sandbox.stage),
            "progress": STAGE_PROGRESS.get(sandbox.stage, 0.0),
            "error": sandbox.error,
            "expires_at": sandbox.expires_at.isoformat() if sandbox.expires_at else None,
        }
    )


def sandbox_payload_localized(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with its labels and error translated into the active language (from their source text)."""
    # gettext("") would answer the catalogue's header, so empty stays empty.
    texts = {key: gettext(payload[key]) for key in ("state_label", "stage_label", "error") if payload.get(key)}
    return {**payload, **texts}


def kept_payload(states: Iterable[KeptState]) -> dict[str, dict[str, Any]]:
    """A learner's kept broker data as pages see it: by broker, when it was saved, its size, whether a
    running sandbox started on it (``in_use``: the page says "restored"; otherwise "will be restored")."""
    return {
        kept.broker: {
            "saved_at": kept.saved_at.isoformat(),
            "size_bytes": kept.size_bytes,
            "in_use": kept.sandbox is not None and kept.sandbox.state in ACTIVE_STATES,
        }
        for kept in states
    }
