"""The registry's broker kinds as the web side sees them: a field validator, labels, the pages' list.

Everything here asks ``sandboxes.brokers.BROKERS`` when it is called, so a kind
added to the registry is accepted and shown without a migration or a template edit.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from sandboxes.brokers import BROKERS, broker_names

UNKNOWN_BROKER = _("Брокер «{broker}» неизвестен; известны: {known}.")


def broker_validate(value: str) -> None:
    """A model field validator: ``value`` must name a registered broker kind."""
    if value not in BROKERS:
        raise ValidationError(str(UNKNOWN_BROKER).format(broker=value, known=", ".join(BROKERS)), code="unknown_broker")


def broker_label(name: str) -> str:
    """The broker's product name in the active language; an unknown name as it is."""
    entry = BROKERS.get(name)
    return gettext(entry.label) if entry else name


def brokers_for_page() -> list[dict[str, str]]:
    """Every broker kind as the page's scripts and templates use it: name, label, short label."""
    found = []
    for name in broker_names():
        entry = BROKERS[name]
        label = gettext(entry.label)
        found.append({"name": name, "label": label, "short": gettext(entry.short) if entry.short else label})
    return found


def brokers_context(request: HttpRequest) -> dict[str, Any]:
    """Context processor: ``broker_kinds`` for every page (base.html hands it to the scripts as JSON)."""
    return {"broker_kinds": brokers_for_page()}
