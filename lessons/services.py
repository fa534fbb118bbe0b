"""Changing what a learner has: chapters read, where they are in a course, drafts of cells, exercise attempts.

Each is kept by course family and chapter slug (see lessons.models), so what a
learner does in one edition of a course counts in every edition.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.utils.translation import gettext_lazy as _

from .models import CellDraft, Chapter, ChapterRead, ExerciseAttempt, ReadingPosition, StepDone
from .selectors import ExerciseRef, chapter_rendered, chapter_steps_done

MAX_DRAFT_CHARS = 100_000
DRAFT_TOO_LONG = _("Код ячейки длиннее 100 000 символов и не сохранён.")
UNKNOWN_CELL = _("В этой главе нет такой ячейки.")
UNKNOWN_STEP = _("В этой главе нет такого шага.")


class LessonError(Exception):
    """A learner-facing error of the lessons domain."""


def chapter_mark_read(*, user: User, chapter: Chapter, read: bool = True) -> bool:
    """Record (or undo) that the learner has read the chapter, in every edition; returns the new state."""
    key: dict[str, Any] = {"user": user, "course_family": chapter.course.family, "chapter_slug": chapter.slug}
    if read:
        ChapterRead.objects.get_or_create(**key)
    else:
        ChapterRead.objects.filter(**key).delete()
    return read


def step_mark_done(*, user: User, chapter: Chapter, step: int, done: bool = True) -> tuple[list[int], bool]:
    """Record (or undo) that the learner passed step number ``step``; the last of them passed marks the chapter read.

    Returns the steps passed and whether the chapter is read now.
    """
    steps = chapter_rendered(chapter=chapter).steps
    total = len(steps)
    if not 1 <= step <= total:
        raise LessonError(str(UNKNOWN_STEP))
    place = steps[step - 1].section
    key: dict[str, Any] = {"user": user, "course_family": chapter.course.family, "chapter_slug": chapter.slug, "step": place}
    if done:
        StepDone.objects.get_or_create(**key)
    else:
        StepDone.objects.filter(**key).delete()
    passed = chapter_steps_done(chapter=chapter, user=user, steps=steps)
    read_key: dict[str, Any] = {"user": user, "course_family": chapter.course.family, "chapter_slug": chapter.slug}
    if done and len(passed) == total:
        ChapterRead.objects.get_or_create(**read_key)
    return passed, ChapterRead.objects.filter(**read_key).exists()


def reading_position_save(*, user: User, chapter: Chapter, anchor: str) -> ReadingPosition:
    """Remember the chapter and section the learner is reading; an anchor the chapter lacks means its top."""
    if anchor and anchor not in {h.anchor for h in chapter_rendered(chapter=chapter).toc}:
        anchor = ""
    position, _ = ReadingPosition.objects.update_or_create(
        user=user,
        course_family=chapter.course.family,
        defaults={"chapter_slug": chapter.slug, "edition": chapter.course, "anchor": anchor},
    )
    return position


def cell_draft_save(*, user: User, chapter: Chapter, cell_key: str, code: str) -> CellDraft | None:
    """Keep the learner's edit of a cell (offered in every edition); code equal to this edition's original removes it."""
    cell = chapter.cells.filter(key=cell_key).exclude(role="check").first()
    if cell is None:
        raise LessonError(UNKNOWN_CELL)
    if len(code) > MAX_DRAFT_CHARS:
        raise LessonError(DRAFT_TOO_LONG)
    key: dict[str, Any] = {
        "user": user,
        "course_family": chapter.course.family,
        "chapter_slug": chapter.slug,
        "cell_key": cell_key,
    }
    if code == cell.code:
        CellDraft.objects.filter(**key).delete()
        return None
    draft, _created = CellDraft.objects.update_or_create(**key, defaults={"code": code})
    return draft


def progress_chapter_moved(*, course_family: str, old_slug: str, new_slug: str) -> None:
    """A chapter's slug changed: what learners have of it follows it."""
    for model in (ChapterRead, ExerciseAttempt, CellDraft):
        model.objects.filter(course_family=course_family, chapter_slug=old_slug).update(chapter_slug=new_slug)


def exercise_attempt_record(*, user: User, exercise: ExerciseRef, passed: bool, reason: str) -> None:
    """Record one check of an exercise; passed in one edition is passed in all."""
    ExerciseAttempt.objects.create(
        user=user,
        course_family=exercise.course_family,
        chapter_slug=exercise.chapter_slug,
        exercise_key=exercise.key,
        passed=passed,
        reason=reason[:2000],
    )
