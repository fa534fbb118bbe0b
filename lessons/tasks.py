"""Celery tasks of lessons: thin wrappers over lessons' services."""

from __future__ import annotations

from celery import shared_task

from sandboxes.ws_limits import proof_slot_end

from .exercises import VERIFY_TASK, exercise_verify


@shared_task(name=VERIFY_TASK, time_limit=900, soft_time_limit=840)
def exercise_verify_task(
    user_id: int, broker: str, check: list, solution: list, *, slot: str = "", in_terminal: bool = False
) -> dict:
    """The proof; ``slot`` is the instructor's run slot taken when it was asked for, given back at its end."""
    try:
        return exercise_verify(
            user_id=user_id,
            broker=broker,
            check=(check[0], int(check[1])),
            solution=(solution[0], int(solution[1])),
            in_terminal=bool(in_terminal),
        )
    finally:
        if slot:
            proof_slot_end(user_id=user_id, token=slot)
