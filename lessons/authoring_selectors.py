"""Reading what instructors edit: courses, a chapter with its course, its history, an exercise's proof parts."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from .authoring import DiffLine, diff_lines, revision_diff
from .models import Chapter, ChapterRevision, Course


def courses_all() -> QuerySet[Course]:
    """Every course, published or not, by title."""
    return Course.objects.order_by("title")


def course_find(*, slug: str) -> Course | None:
    return Course.objects.filter(slug=slug).first()


def course_chapters(*, course: Course) -> QuerySet[Chapter]:
    """The course's chapters in reading order, published or not."""
    return course.chapters.order_by("order", "number")


def chapter_order_next(*, course: Course) -> int:
    """The ``order`` a chapter added at the end of the course gets."""
    return (course.chapters.order_by("-order").values_list("order", flat=True).first() or 0) + 1


def chapter_find(*, course: str, chapter: str) -> Chapter | None:
    """A chapter by course and chapter slug, with its course."""
    return Chapter.objects.select_related("course").filter(course__slug=course, slug=chapter).first()


def chapter_revision_exists(*, chapter: Chapter, number: int) -> bool:
    return chapter.revisions.filter(number=number).exists()


@dataclass(frozen=True)
class ChapterHistory:
    """A chapter's revisions (newest first) and the coloured diff between revisions ``a`` and ``b``."""

    revisions: list[ChapterRevision]
    diff: list[DiffLine]
    a: str | None
    b: str | None


def chapter_history(*, chapter: Chapter, a: str | None, b: str | None) -> ChapterHistory | None:
    """The history page's content; without ``a`` and ``b``, what the latest save changed. None if a revision is unknown."""
    revisions = list(chapter.revisions.select_related("author"))
    if not (a and b) and len(revisions) >= 2:
        # Opened without a choice: what the latest save changed (revisions are newest first).
        a, b = str(revisions[1].number), str(revisions[0].number)
    diff = ""
    if a and b:
        old = ChapterRevision.objects.filter(chapter=chapter, number=a).first()
        new = ChapterRevision.objects.filter(chapter=chapter, number=b).first()
        if old is None or new is None:
            return None
        diff = revision_diff(old.source, new.source, old_name=f"r{old.number}", new_name=f"r{new.number}")
    return ChapterHistory(revisions, diff_lines(diff), a, b)


@dataclass(frozen=True)
class ExerciseProofParts:
    """What proving an exercise needs: its broker, and its check and solution as (code, timeout)."""

    broker: str
    check: tuple[str, int]
    solution: tuple[str, int]
    in_terminal: bool = False  # the solution is commands for the sandbox's terminal


def exercise_proof_parts(*, chapter: Chapter, exercise: str) -> ExerciseProofParts | None:
    """The exercise's check and solution cells, or None if the chapter lacks either."""
    cells = {c.role: c for c in chapter.cells.filter(exercise__key=exercise, role__in=("check", "solution"))}
    if len(cells) != 2:
        return None
    check, solution = cells["check"], cells["solution"]
    in_terminal = solution.language == "terminal"
    return ExerciseProofParts(check.broker, (check.code, check.timeout), (solution.code, solution.timeout), in_terminal)
