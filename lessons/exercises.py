"""Exercises: the verdict of a learner's check, and an instructor's proof that an exercise can be solved.

The proof runs on the worker (``lessons.tasks``) on a throwaway broker of its
own: the check must fail on the empty broker, the solution must run, then the
check must pass. The page queues it and asks for the result by job id.
"""

from __future__ import annotations

from typing import Any

from celery import signature
from celery.result import AsyncResult
from django.contrib.auth.models import User
from django.core.cache import cache
from django.utils.translation import gettext_lazy

from courseplatform.metrics import refusal_count
from sandboxes import ws_limits
from sandboxes.cell_runs import code_run_collected
from sandboxes.services import quota
from sandboxes.services.lifecycle import SandboxError
from sandboxes.services.provisioning import SandboxNotStarted, sandbox_scratch
from sandboxes.terminal_typing import terminal_commands_collected

from .checks import check_reason
from .selectors import ExerciseRef
from .services import exercise_attempt_record

#: The worker's task that proves an exercise; queued by name so this module never imports the tasks module.
VERIFY_TASK = "lessons.exercise_verify"
CHECK_PASSED = gettext_lazy("Проверка пройдена.")
OUTPUT_KEPT = 4000
#: Who asked for each proof, kept as long as Celery keeps its result (a day by default).
_OWNER_KEY = "exercise-proof:{job}"
OWNER_KEPT_S = 24 * 3600


def exercise_check_record(*, user: User, exercise: ExerciseRef | None, result: dict[str, Any]) -> tuple[bool, str]:
    """The verdict of one check run (its agent exit message): passed and the reason shown; recorded as an attempt."""
    passed = result.get("status") == 0
    reason = str(CHECK_PASSED) if passed else check_reason(result)
    if exercise is not None:
        exercise_attempt_record(user=user, exercise=exercise, passed=passed, reason=reason)
    return passed, reason


def exercise_verify(
    *, user_id: int, broker: str, check: tuple[str, int], solution: tuple[str, int], in_terminal: bool = False
) -> dict[str, Any]:
    """On a fresh broker of its own: the check must fail, the solution must run, then the check must pass.

    ``check`` and ``solution`` are (code, timeout); ``in_terminal``: the solution is
    commands typed into the sandbox's terminal, as the learner would. Returns each
    step's verdict and output; the throwaway broker is removed whatever happens.
    """
    try:
        with sandbox_scratch(user_id=user_id, broker=broker) as sandbox:
            empty = code_run_collected(sandbox=sandbox, code=check[0], timeout=check[1], op="check")
            if in_terminal:
                solved = terminal_commands_collected(sandbox=sandbox, commands=solution[0], timeout=solution[1])
            else:
                solved = code_run_collected(sandbox=sandbox, code=solution[0], timeout=solution[1])
            after = code_run_collected(sandbox=sandbox, code=check[0], timeout=check[1], op="check")
    except SandboxNotStarted as exc:
        return {"ok": False, "error": str(exc)}
    report = {
        "empty_fails": empty["status"] != 0,
        "empty_output": empty["output"][-OUTPUT_KEPT:],
        "solution_runs": solved["status"] == 0,
        "solution_output": solved["output"][-OUTPUT_KEPT:],
        "solved_passes": after["status"] == 0,
        "solved_output": after["output"][-OUTPUT_KEPT:],
    }
    report["ok"] = report["empty_fails"] and report["solution_runs"] and report["solved_passes"]
    return report


class ProofRefused(Exception):
    """The instructor's limits refuse another proof now; ``str()`` says which."""


def exercise_verify_enqueue(
    *, user_id: int, broker: str, check: tuple[str, int], solution: tuple[str, int], in_terminal: bool = False
) -> str:
    """Queue the proof of an exercise on the worker; returns the job id to ask about (its asker's only).

    A proof is the instructor's like a learner's cell: its broker counts against their quota of sandboxes
    (checked here, and again by the worker when it makes the broker) and it holds one of their run slots
    (ws_limits) from now until the worker has finished it. Raises ProofRefused past either limit.
    """
    try:
        quota.quota_check(user_id=user_id)
        slot = ws_limits.proof_slot_take(user_id=user_id)
    except ws_limits.Refused as exc:
        refusal_count(reason=exc.reason, user_id=user_id)
        raise ProofRefused(str(exc)) from exc
    except SandboxError as exc:  # the quota, counted where it is checked
        raise ProofRefused(str(exc)) from exc
    try:
        job = str(
            signature(
                VERIFY_TASK,
                args=(user_id, broker, list(check), list(solution)),
                kwargs={"slot": slot, "in_terminal": in_terminal},
            )
            .delay()
            .id
        )
    except BaseException:
        ws_limits.proof_slot_end(user_id=user_id, token=slot)
        raise
    cache.set(_OWNER_KEY.format(job=job), user_id, OWNER_KEPT_S)
    return job


def exercise_verify_owned(*, job: str, user_id: int) -> bool:
    """Whether ``job`` is a proof ``user_id`` asked for: another instructor's report (their course's code) is theirs."""
    return cache.get(_OWNER_KEY.format(job=job)) == user_id


def exercise_verify_result(*, job: str) -> dict[str, Any]:
    """{"state": "pending"|"done"|"error", "report": {...}} for a queued proof."""
    result = AsyncResult(job)
    if not result.ready():
        return {"state": "pending"}
    if result.failed():
        return {"state": "error", "error": str(result.result)}
    return {"state": "done", "report": result.result}
