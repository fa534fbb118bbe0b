"""Changing what a learner has: chapters read, drafts of cells."""

from __future__ import annotations

from django.contrib.auth.models import User

from .models import CellDraft, Chapter, ChapterRead

MAX_DRAFT_CHARS = 100_000
DRAFT_TOO_LONG = "Код ячейки длиннее 100 000 символов и не сохранён."
UNKNOWN_CELL = "В этой главе нет такой ячейки."


class LessonError(Exception):
    """A learner-facing error of the lessons domain."""


def chapter_mark_read(*, user: User, chapter: Chapter, read: bool = True) -> bool:
    """Record (or undo) that the learner has read the chapter; returns the new state."""
    if read:
        ChapterRead.objects.get_or_create(user=user, chapter=chapter)
    else:
        ChapterRead.objects.filter(user=user, chapter=chapter).delete()
    return read


def cell_draft_save(*, user: User, chapter: Chapter, cell_key: str, code: str) -> CellDraft | None:
    """Keep the learner's edit of a cell; code equal to the original removes the draft."""
    cell = chapter.cells.filter(key=cell_key).exclude(role="check").first()
    if cell is None:
        raise LessonError(UNKNOWN_CELL)
    if len(code) > MAX_DRAFT_CHARS:
        raise LessonError(DRAFT_TOO_LONG)
    if code == cell.code:
        CellDraft.objects.filter(user=user, chapter=chapter, cell_key=cell_key).delete()
        return None
    draft, _ = CellDraft.objects.update_or_create(user=user, chapter=chapter, cell_key=cell_key, defaults={"code": code})
    return draft


def exercise_attempt_record(*, user: User, exercise_id: int, passed: bool, reason: str) -> None:
    from .models import ExerciseAttempt

    ExerciseAttempt.objects.create(user=user, exercise_id=exercise_id, passed=passed, reason=reason[:2000])
