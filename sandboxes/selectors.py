"""Reading sandboxes: what a user has, what is running."""

from django.db.models import QuerySet

from .models import ACTIVE_STATES, Sandbox


def sandboxes_active(*, user_id: int) -> QuerySet[Sandbox]:
    """The user's sandboxes that hold or are about to hold a unit."""
    return Sandbox.objects.filter(user_id=user_id, state__in=ACTIVE_STATES).order_by("broker")
