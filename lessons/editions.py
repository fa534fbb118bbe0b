"""A course and its translations are one course: which edition a learner reads, and where the same place is.

The UI language chooses the edition: a chapter or course page asked for in one
language while the learner's UI speaks another, and the course has an edition in
that one, opens that edition. A place in a chapter is a section, and sections are
matched by position (the n-th h2/h3 heading of one edition is the n-th of the
other), not by anchor: anchors are slugs of the heading's text, so they differ
between languages, and the course format has no heading ids an author would have
to keep in step by hand. ``translation_problems`` (run by ``course_lint``) holds
the editions to the same chapters, cells, exercises and sections, which is what
makes matching by position, and progress by key, safe.
"""

from __future__ import annotations

from .course_files import FormatProblem, split_front_matter
from .course_io import CourseFolder
from .models import Chapter, Course
from .rendering import section_headings
from .selectors import course_editions
from .steps import chapter_steps


def course_for_language(*, course: Course, language: str) -> Course:
    """The edition of ``course`` written in ``language``, or ``course`` itself when there is none."""
    if course.language == language:
        return course
    return next((c for c in course_editions(course=course) if c.language == language), course)


def chapter_for_language(*, chapter: Chapter, language: str) -> Chapter:
    """The same chapter in the edition written in ``language``, or ``chapter`` when that edition lacks it."""
    edition = course_for_language(course=chapter.course, language=language)
    if edition.pk == chapter.course_id:
        return chapter
    found = edition.chapters.filter(slug=chapter.slug, published=True).select_related("course").first()
    return found or chapter


def chapter_sections(*, chapter: Chapter) -> list[str]:
    """Anchors of the chapter's h2/h3 headings in reading order (those inside exercises too)."""
    _meta, body, _line = split_front_matter(chapter.source, file=chapter.filename)
    return [anchor for _level, anchor in section_headings(body)]


def section_translate(*, anchor: str, source: Chapter, target: Chapter) -> str:
    """The anchor in ``target`` of the section that is ``anchor`` in ``source``; "" when there is none."""
    if source.pk == target.pk:
        return anchor if anchor in chapter_sections(chapter=source) else ""
    sections = chapter_sections(chapter=source)
    if anchor not in sections:
        return ""
    position = sections.index(anchor)
    others = chapter_sections(chapter=target)
    return others[position] if position < len(others) else ""


def translation_problems(*, original: CourseFolder, translation: CourseFolder, name: str = "") -> list[FormatProblem]:
    """What keeps ``translation`` from being the same course as ``original``.

    The same chapters (by slug, with the same number), and in each the same
    cells (key, role, broker), exercises (key) and sections (h2/h3 in order):
    progress is kept by these keys, and the language switch finds its place by
    the sections' positions.
    """
    problems: list[FormatProblem] = []
    theirs = {parsed.meta["slug"]: (filename, parsed) for filename, (_source, parsed) in original.chapters.items()}
    ours = {parsed.meta["slug"]: (filename, parsed) for filename, (_source, parsed) in translation.chapters.items()}
    for slug in sorted(theirs.keys() - ours.keys()):
        problems.append(FormatProblem(name or "course.md", 1, f"chapter '{slug}' of the original is not translated"))
    for slug in sorted(ours.keys() - theirs.keys()):
        problems.append(FormatProblem(ours[slug][0], 2, f"chapter '{slug}' is not in the original"))
    for slug in sorted(ours.keys() & theirs.keys()):
        filename, mine = ours[slug]
        _their_file, other = theirs[slug]
        if str(mine.meta["number"]) != str(other.meta["number"]):
            problems.append(
                FormatProblem(filename, 2, f"number {mine.meta['number']} differs from the original's {other.meta['number']}")
            )
        my_cells = [(c.key, c.role, c.broker) for c in mine.cells]
        their_cells = [(c.key, c.role, c.broker) for c in other.cells]
        if my_cells != their_cells:
            line = next((c.line for c, t in zip(mine.cells, their_cells, strict=False) if (c.key, c.role, c.broker) != t), 1)
            problems.append(
                FormatProblem(
                    filename,
                    line,
                    "cells (id, role, broker, in order) differ from the original's: " + _difference(my_cells, their_cells),
                )
            )
        my_exercises = [e.key for e in mine.exercises]
        their_exercises = [e.key for e in other.exercises]
        if my_exercises != their_exercises:
            problems.append(
                FormatProblem(filename, 1, "exercises differ from the original's: " + _difference(my_exercises, their_exercises))
            )
        my_levels = [level for level, _ in section_headings(mine.body)]
        their_levels = [level for level, _ in section_headings(other.body)]
        if my_levels != their_levels:
            problems.append(
                FormatProblem(
                    filename,
                    mine.body_line,
                    f"sections differ from the original's (h2/h3 in order: {_levels(my_levels)} here, {_levels(their_levels)} there)",
                )
            )
        my_steps = [step.section + 1 for step in chapter_steps(mine.meta, mine.body)]
        their_steps = [step.section + 1 for step in chapter_steps(other.meta, other.body)]
        if my_steps != their_steps:
            message = f"steps begin at headings {my_steps} here and {their_steps} in the original (h2/h3 counted in order)"
            problems.append(FormatProblem(filename, 2, message))
    return problems


def _difference(mine: list, theirs: list) -> str:
    missing = [x for x in theirs if x not in mine]
    extra = [x for x in mine if x not in theirs]
    parts = [f"missing {_names(missing)}" if missing else "", f"not in the original {_names(extra)}" if extra else ""]
    return "; ".join(p for p in parts if p) or "the order differs"


def _names(items: list) -> str:
    return ", ".join(f"{i[0]} ({'/'.join(i[1:])})" if isinstance(i, tuple) else str(i) for i in items)


def _levels(levels: list[int]) -> str:
    return "".join(str(level) for level in levels) or "none"
