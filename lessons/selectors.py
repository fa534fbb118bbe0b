"""Reading the course: outlines with a learner's progress, a chapter ready to show.

Progress is read by course family and chapter slug (see lessons.models), so both
editions of a course show the same chapters read, exercises passed and drafts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Q, QuerySet
from django.urls import reverse

from .course_files import split_front_matter
from .models import Cell, CellDraft, Chapter, ChapterRead, Course, ExerciseAttempt, ReadingPosition, StepDone
from .rendering import RenderedChapter, markdown_render_cached
from .steps import RenderedStep


@dataclass(frozen=True)
class ChapterLine:
    chapter: Chapter
    read: bool
    exercises_total: int
    exercises_passed: int
    steps_total: int = 0
    steps_passed: int = 0


@dataclass(frozen=True)
class CourseOutline:
    course: Course
    chapters: tuple[ChapterLine, ...]
    chapters_read: int
    exercises_total: int
    exercises_passed: int

    @property
    def percent(self) -> int:
        total = len(self.chapters) + self.exercises_total
        done = self.chapters_read + self.exercises_passed
        return round(100 * done / total) if total else 0


def courses_published() -> QuerySet[Course]:
    return Course.objects.filter(published=True).order_by("title")


def chapters_published(*, course: Course) -> QuerySet[Chapter]:
    return course.chapters.filter(published=True).order_by("order", "number")


def course_outline(*, course: Course, user: User | AnonymousUser) -> CourseOutline:
    """Chapters in order with what this learner has read and passed, in this edition or another."""
    chapters = list(chapters_published(course=course).prefetch_related("exercises"))
    read: set[str] = set()
    passed: set[tuple[str, str]] = set()
    steps_done: Iterable[tuple[str, int]] = ()
    if user.is_authenticated:
        read = set(ChapterRead.objects.filter(user=user, course_family=course.family).values_list("chapter_slug", flat=True))
        passed = set(
            ExerciseAttempt.objects.filter(user=user, course_family=course.family, passed=True).values_list(
                "chapter_slug", "exercise_key"
            )
        )
        steps_done = list(StepDone.objects.filter(user=user, course_family=course.family).values_list("chapter_slug", "step"))
    lines = []
    for chapter in chapters:
        keys = [e.key for e in chapter.exercises.all()]
        done = sum((chapter.slug, key) in passed for key in keys)
        has_steps = bool(split_front_matter(chapter.source, file=chapter.filename)[0].get("steps"))
        steps = chapter_rendered(chapter=chapter).steps if has_steps else ()
        places = {place for slug, place in steps_done if slug == chapter.slug}
        lines.append(
            ChapterLine(chapter, chapter.slug in read, len(keys), done, len(steps), sum(s.section in places for s in steps))
        )
    return CourseOutline(
        course=course,
        chapters=tuple(lines),
        chapters_read=sum(line.read for line in lines),
        exercises_total=sum(line.exercises_total for line in lines),
        exercises_passed=sum(line.exercises_passed for line in lines),
    )


@dataclass(frozen=True)
class ReadingPlace:
    """Where "continue where you left off" leads: a chapter, and a section of it (or its top)."""

    chapter: Chapter
    anchor: str
    section: str

    @property
    def url(self) -> str:
        url = reverse("lessons:chapter", kwargs={"course": self.chapter.course.slug, "chapter": self.chapter.slug})
        return f"{url}#{self.anchor}" if self.anchor else url


def reading_place(*, user: User | AnonymousUser, courses: list[Course]) -> ReadingPlace | None:
    """The latest place the learner read in any of ``courses``, shown in that edition, or None.

    The place may have been read in another edition of the same course: the chapter
    is the same by slug, the section the same by position.
    """
    from .editions import section_translate  # editions reads this module

    if not user.is_authenticated:
        return None
    by_family = {course.family: course for course in courses}
    position = (
        ReadingPosition.objects.filter(user=user, course_family__in=by_family)
        .select_related("edition")
        .order_by("-updated_at")
        .first()
    )
    if position is None:
        return None
    course = by_family[position.course_family]
    chapter = course.chapters.filter(slug=position.chapter_slug, published=True).select_related("course").first()
    if chapter is None:
        return None
    read_in = chapter
    if position.edition_id != course.pk:
        read_in = Chapter.objects.filter(course=position.edition, slug=position.chapter_slug).first() or chapter
    anchor = section_translate(anchor=position.anchor, source=read_in, target=chapter) if position.anchor else ""
    titles = {h.anchor: h.text for h in chapter_rendered(chapter=chapter).toc}
    anchor = anchor if anchor in titles else ""
    return ReadingPlace(chapter, anchor, titles.get(anchor, ""))


def chapter_rendered(*, chapter: Chapter) -> RenderedChapter:
    """The chapter's HTML and table of contents, from the render cache when unchanged."""
    meta, body, _line = split_front_matter(chapter.source, file=chapter.filename)
    base = reverse("lessons:asset", kwargs={"course": chapter.course.slug, "path": "x"})[:-1]
    rows = chapter.course.assets.values_list("path", "width", "height")
    sizes = {path: (width, height) for path, width, height in rows if width and height}
    steps, minutes = meta.get("steps") or (), chapter.estimated_minutes
    return markdown_render_cached(body, broker=chapter.broker, asset_base=base, asset_sizes=sizes, steps=steps, minutes=minutes)


def chapter_neighbours(*, chapter: Chapter) -> tuple[Chapter | None, Chapter | None]:
    chapters = list(chapters_published(course=chapter.course))
    index = next(i for i, c in enumerate(chapters) if c.pk == chapter.pk)
    return (chapters[index - 1] if index else None, chapters[index + 1] if index + 1 < len(chapters) else None)


def chapter_cells_for(*, chapter: Chapter, user: User | AnonymousUser) -> list[dict[str, object]]:
    """The runnable cells of a chapter as the page's script needs them, with the learner's drafts."""
    drafts: dict[str, str] = {}
    if user.is_authenticated:
        drafts = dict(
            CellDraft.objects.filter(user=user, course_family=chapter.course.family, chapter_slug=chapter.slug).values_list(
                "cell_key", "code"
            )
        )
    cells: QuerySet[Cell] = chapter.cells.exclude(role="check").exclude(language="terminal").select_related("exercise")
    return [
        {
            "key": c.key,
            "role": c.role,
            "broker": c.broker,
            "timeout": c.timeout,
            "original": c.code,
            "code": drafts.get(c.key, c.code),
            "exercise": c.exercise.key if c.exercise else None,
        }
        for c in cells
    ]


def chapter_is_read(*, chapter: Chapter, user: User | AnonymousUser) -> bool:
    """Whether the learner has read this chapter, in this edition or another."""
    return bool(
        user.is_authenticated
        and ChapterRead.objects.filter(user=user, course_family=chapter.course.family, chapter_slug=chapter.slug).exists()
    )


def chapter_steps_done(
    *, chapter: Chapter, user: User | AnonymousUser, steps: tuple[RenderedStep, ...] | None = None
) -> list[int]:
    """The numbers (1-based, as shown) of this chapter's steps the learner has passed, in this edition or another.

    ``steps`` are the chapter's rendered steps, for a caller that has them already.
    """
    if not user.is_authenticated:
        return []
    done = StepDone.objects.filter(user=user, course_family=chapter.course.family, chapter_slug=chapter.slug)
    places = set(done.values_list("step", flat=True))
    steps = chapter_rendered(chapter=chapter).steps if steps is None else steps
    return [step.number for step in steps if step.section in places]


@dataclass(frozen=True)
class ExerciseRef:
    """An exercise as progress knows it: the same in every edition of the course."""

    course_family: str
    chapter_slug: str
    key: str


@dataclass(frozen=True)
class SetupCode:
    """A setup cell that must have run on the broker before any other cell of its chapter there."""

    key: str
    code: str
    timeout: int
    scope: str  # "course/chapter": the same key in another chapter is another setup


@dataclass(frozen=True)
class RunnableCode:
    """What the live stream needs to run a cell or a check: code, broker, time limit, and what must run first.

    ``setups`` are the chapter's setup cells on the same broker, in document order;
    ``as_setup`` is set when the cell is itself a setup cell, so that running it
    by hand counts as its one run.
    """

    broker: str
    code: str
    timeout: int
    exercise: ExerciseRef | None = None
    setups: tuple[SetupCode, ...] = ()
    as_setup: SetupCode | None = None


def _setups_before(cell: Cell) -> tuple[SetupCode, ...]:
    """The setup cells that run before ``cell``: all of its chapter's on its broker, or the earlier ones for a setup."""
    scope = f"{cell.chapter.course.slug}/{cell.chapter.slug}"
    found = Cell.objects.filter(chapter_id=cell.chapter_id, role="setup", broker=cell.broker).exclude(pk=cell.pk)
    if cell.role == "setup":
        found = found.filter(position__lt=cell.position)
    return tuple(SetupCode(s.key, s.code, s.timeout, scope) for s in found.order_by("position"))


def cell_runnable(*, course: str, chapter: str, cell: str) -> RunnableCode | None:
    """A learner-runnable cell (not a check, nor commands for the terminal) of a published chapter, with the setups to run before it."""
    found = (
        Cell.objects.filter(chapter__course__slug=course, chapter__slug=chapter, key=cell, chapter__published=True)
        .exclude(role="check")
        .exclude(language="terminal")
        .select_related("chapter__course")
        .first()
    )
    if found is None:
        return None
    itself = SetupCode(found.key, found.code, found.timeout, f"{course}/{chapter}") if found.role == "setup" else None
    return RunnableCode(found.broker, found.code, found.timeout, setups=_setups_before(found), as_setup=itself)


def exercise_check_runnable(*, course: str, chapter: str, exercise: str) -> RunnableCode | None:
    """An exercise's check, with the setups its chapter runs before it on the check's broker."""
    found = (
        Cell.objects.filter(
            chapter__course__slug=course, chapter__slug=chapter, exercise__key=exercise, role="check", chapter__published=True
        )
        .select_related("chapter__course")
        .first()
    )
    if found is None:
        return None
    ref = ExerciseRef(found.chapter.course.family, found.chapter.slug, exercise)
    return RunnableCode(found.broker, found.code, found.timeout, ref, setups=_setups_before(found))


def chapter_exercises_for(*, chapter: Chapter, user: User | AnonymousUser) -> dict[str, dict[str, object]]:
    """The chapter's exercises for the page's script, with whether this learner has passed each."""
    passed: set[str] = set()
    if user.is_authenticated:
        passed = set(
            ExerciseAttempt.objects.filter(
                user=user, course_family=chapter.course.family, chapter_slug=chapter.slug, passed=True
            ).values_list("exercise_key", flat=True)
        )
    return {e.key: {"title": e.title, "hints": len(e.hints), "passed": e.key in passed} for e in chapter.exercises.all()}


def courses_for_language(*, language: str) -> list[Course]:
    """One edition of each published course: the one in ``language`` if there is one, else the original."""
    families: dict[str, list[Course]] = {}
    for course in courses_published():
        families.setdefault(course.family, []).append(course)
    chosen = []
    for editions in families.values():
        match = [c for c in editions if c.language == language]
        originals = [c for c in editions if not c.translation_of]
        chosen.append((match or originals or editions)[0])
    return sorted(chosen, key=lambda c: c.title)


def course_editions(*, course: Course) -> list[Course]:
    """Every published edition of the course, this one included, by language."""
    family = course.family
    return list(courses_published().filter(Q(slug=family) | Q(translation_of=family)).order_by("language", "slug"))


def course_other_editions(*, course: Course) -> list[Course]:
    """The course's published editions in other languages (the page offers to switch to each)."""
    return [c for c in course_editions(course=course) if c.language != course.language]
