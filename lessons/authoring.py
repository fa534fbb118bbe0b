"""What instructors change: chapters saved as revisions, conflicts told, publishing, order, restore.

Every save goes through ``chapter_save``: the source is parsed and validated
first (nothing invalid is stored), a save made against an older revision than
the current one is refused with the difference, and each accepted save is a
new revision.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .chapter_parsing import parse_chapter
from .course_files import CourseFormatError, FormatProblem, parse_course
from .course_io import chapter_fields, chapter_structure_save
from .models import Chapter, ChapterRevision, Course
from .services import progress_chapter_moved

SLUG_TAKEN = gettext_noop("В курсе уже есть глава со слагом «{slug}».")


class ChapterConflict(Exception):
    """Someone saved the chapter after the revision this save started from."""

    def __init__(self, *, current: Chapter, diff: str) -> None:
        self.current = current
        self.diff = diff
        super().__init__(f"chapter {current.pk} is at revision {current.revision}")


def revision_diff(old: str, new: str, *, old_name: str, new_name: str) -> str:
    """A unified diff between two versions of a chapter file."""
    return "".join(
        difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=old_name, tofile=new_name)
    )


@dataclass(frozen=True)
class DiffLine:
    """One line of a unified diff and what it is: "file", "hunk", "add", "del" or "same"."""

    kind: str
    text: str


def diff_lines(diff: str) -> list[DiffLine]:
    """A unified diff split into lines that a page can colour by kind."""
    lines = []
    for text in diff.splitlines():
        if text.startswith(("+++", "---")):
            kind = "file"
        elif text.startswith("@@"):
            kind = "hunk"
        elif text.startswith("+"):
            kind = "add"
        elif text.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        lines.append(DiffLine(kind, text))
    return lines


def _filename_for(slug: str, order: int) -> str:
    return f"{order:02d}-{slug}.md"


@transaction.atomic
def chapter_create(*, course: Course, source: str, author: User) -> Chapter:
    """A new chapter (unpublished) from a full source; raises CourseFormatError on problems."""
    parsed = parse_chapter(source, file="new chapter")
    slug = parsed.meta["slug"]
    if course.chapters.filter(slug=slug).exists():
        raise CourseFormatError([FormatProblem("new chapter", 2, _(SLUG_TAKEN).format(slug=slug))])
    chapter = Chapter.objects.create(
        course=course,
        slug=slug,
        filename=_filename_for(slug, parsed.meta["order"]),
        source=source,
        published=False,
        revision=1,
        **chapter_fields(parsed),
    )
    chapter_structure_save(chapter=chapter, parsed=parsed)
    ChapterRevision.objects.create(chapter=chapter, number=1, source=source, author=author, note="created")
    return chapter


@transaction.atomic
def chapter_save(*, chapter: Chapter, source: str, author: User | None, base_revision: int, note: str = "") -> Chapter:
    """Save a new version edited from ``base_revision``.

    Raises CourseFormatError (with file:line problems) when the source is
    invalid, and ChapterConflict when another save came in between.
    """
    current = Chapter.objects.select_for_update().get(pk=chapter.pk)
    if current.revision != base_revision:
        diff = revision_diff(source, current.source, old_name="ваша версия", new_name=f"сохранённая версия r{current.revision}")
        raise ChapterConflict(current=current, diff=diff)
    if source == current.source:
        return current
    parsed = parse_chapter(source, file=current.filename)
    slug = parsed.meta["slug"]
    if slug != current.slug and current.course.chapters.filter(slug=slug).exclude(pk=current.pk).exists():
        raise CourseFormatError([FormatProblem(current.filename, 2, _(SLUG_TAKEN).format(slug=slug))])
    if slug != current.slug and not current.course.translation_of:
        # Progress is kept by the original's slugs (translations must follow them: course_lint).
        progress_chapter_moved(course_family=current.course.family, old_slug=current.slug, new_slug=slug)
    current.source = source
    current.slug = slug
    current.revision += 1
    for field, value in chapter_fields(parsed).items():
        setattr(current, field, value)
    current.save()
    chapter_structure_save(chapter=current, parsed=parsed)
    ChapterRevision.objects.create(chapter=current, number=current.revision, source=source, author=author, note=note[:200])
    return current


def chapter_revision_restore(*, chapter: Chapter, number: int, author: User) -> Chapter:
    """Make an old revision the newest one (history is kept: restoring is a new revision)."""
    old = chapter.revisions.get(number=number)
    return chapter_save(
        chapter=chapter, source=old.source, author=author, base_revision=chapter.revision, note=f"restored r{number}"
    )


def chapter_publish(*, chapter: Chapter, published: bool) -> Chapter:
    Chapter.objects.filter(pk=chapter.pk).update(published=published)
    chapter.published = published
    return chapter


_ORDER_LINE = re.compile(r"^order:\s*-?\d+\s*$", re.M)


@transaction.atomic
def chapters_reorder(*, course: Course, slugs: list[str], author: User) -> None:
    """Give the chapters the order of ``slugs`` (1, 2, ...), rewriting each file's ``order:`` line."""
    chapters = {c.slug: c for c in course.chapters.all()}
    if sorted(slugs) != sorted(chapters):
        raise ValueError("the new order must name every chapter of the course exactly once")
    for position, slug in enumerate(slugs, start=1):
        chapter = chapters[slug]
        if chapter.order == position:
            continue
        head, sep, rest = chapter.source.partition("\n---")
        source = _ORDER_LINE.sub(f"order: {position}", head, count=1) + sep + rest
        chapter_save(chapter=chapter, source=source, author=author, base_revision=chapter.revision, note="reordered")


def chapter_move(*, course: Course, slug: str, direction: str, author: User) -> None:
    """Move one chapter a place ``"up"`` or ``"down"``; at an end, or for an unknown slug, nothing changes."""
    slugs = list(course.chapters.order_by("order", "number").values_list("slug", flat=True))
    if slug in slugs:
        i = slugs.index(slug)
        j = i - 1 if direction == "up" else i + 1
        if 0 <= j < len(slugs):
            slugs[i], slugs[j] = slugs[j], slugs[i]
    chapters_reorder(course=course, slugs=slugs, author=author)


def course_create(*, title: str, slug: str, description: str) -> Course:
    """A new unpublished course (or the existing one of that slug); raises CourseFormatError on problems."""
    source = f"---\ntitle: {json.dumps(title, ensure_ascii=False)}\nslug: {slug}\nlanguage: ru\n---\n{description}\n"
    meta = parse_course(source).meta
    course, _created = Course.objects.get_or_create(
        slug=meta["slug"], defaults={"title": meta["title"], "source": source, "published": False}
    )
    return course


def course_publish(*, slug: str, published: bool) -> None:
    """Show the course to learners, or hide it."""
    Course.objects.filter(slug=slug).update(published=published)
