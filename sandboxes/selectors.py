"""Reading sandboxes: what a user has, what is running."""

from django.db.models import QuerySet

from .models import ACTIVE_STATES, Purpose, Sandbox, State


def sandboxes_active(*, user_id: int) -> QuerySet[Sandbox]:
    """The user's sandboxes that hold or are about to hold a unit."""
    return Sandbox.objects.filter(user_id=user_id, state__in=ACTIVE_STATES, purpose=Purpose.LEARNER).order_by("broker")


def sandbox_of_user(*, user_id: int, sandbox_id: int) -> Sandbox | None:
    """The sandbox if it is the user's, else None (a page acts only on its user's sandboxes)."""
    return Sandbox.objects.filter(pk=sandbox_id, user_id=user_id).first()


def sandboxes_of_users(*, user_ids: list[int]) -> dict[int, list[Sandbox]]:
    """The learner sandboxes (active or last stopped) of many users, for the class view."""
    found: dict[int, list[Sandbox]] = {}
    for sandbox in Sandbox.objects.filter(user_id__in=user_ids, purpose=Purpose.LEARNER, state__in=ACTIVE_STATES).order_by(
        "broker"
    ):
        if sandbox.user_id is not None:
            found.setdefault(sandbox.user_id, []).append(sandbox)
    return found


def sandbox_ready_of(*, user_id: int, broker: str) -> Sandbox | None:
    """The user's own ready learner sandbox of ``broker``, or None (never anyone else's)."""
    return (
        Sandbox.objects.filter(user_id=user_id, broker=broker, state=State.READY, purpose=Purpose.LEARNER).order_by("-pk").first()
    )


def sandbox_active_of(*, user_id: int, broker: str) -> Sandbox | None:
    """The user's own learner sandbox of ``broker`` that holds or is about to hold a unit, or None."""
    return sandboxes_active(user_id=user_id).filter(broker=broker).order_by("-pk").first()
