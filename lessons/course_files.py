"""Reading the course format (docs/course-format.md): located problems, front matter, course.md, parsed values.

Pure functions over text: every problem becomes a ``FormatProblem`` with file
and line, so the loader, the linter and the editor report the same errors, in
the language active when the file is read (the editor's page, or LANGUAGE_CODE).
A chapter's cells and exercises are read in chapter_parsing.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.utils.translation import gettext as _

MAX_FILE_BYTES = 2 * 1024 * 1024
KEY_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")

CHAPTER_KEYS = {
    "title": str,
    "slug": str,
    "number": str,
    "order": int,
    "broker": str,
    "estimated_minutes": int,
    "objectives": list,
}
#: Keys a chapter may have: ``steps`` names the sections its steps begin with (lessons/steps.py).
CHAPTER_OPTIONAL_KEYS = {"steps": list}
COURSE_KEYS = {"title": str, "slug": str, "language": str}
#: Keys a course.md may have: ``translation_of`` names the slug of the course this one translates.
COURSE_OPTIONAL_KEYS = {"translation_of": str}


# Messages used in more than one place: functions, so each is in the language active when it is reported.
def slug_message() -> str:
    return _("слаг — только строчные латинские буквы, цифры и дефисы")


def _wrong_type_message() -> str:
    return _("поле заголовка «{key}» должно быть типа {kind}")


@dataclass(frozen=True)
class FormatProblem:
    """One error in a course file, located by line (1-based)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class CourseFormatError(Exception):
    """Raised with every problem found in a file, not only the first."""

    def __init__(self, problems: list[FormatProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class ParsedCell:
    key: str
    role: str
    broker: str
    timeout: int
    code: str
    line: int
    exercise: str | None = None
    expect: str | None = None  # a regular expression the output must contain (the course walk checks it)
    language: str = "python"  # "terminal": an exercise's commands for the sandbox's terminal, not a Python cell


@dataclass(frozen=True)
class ParsedExercise:
    key: str
    title: str
    line: int
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedChapter:
    meta: dict[str, Any]
    body: str
    body_line: int  # the file line on which the body starts
    cells: tuple[ParsedCell, ...] = ()
    exercises: tuple[ParsedExercise, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ParsedCourse:
    meta: dict[str, Any]
    body: str


def decode_source(raw: bytes, *, file: str) -> str:
    """Bytes of a course file as text; anything but UTF-8 is a located error."""
    if len(raw) > MAX_FILE_BYTES:
        raise CourseFormatError(
            [FormatProblem(file, 1, _("файл занимает {size} байт; предел — {limit}").format(size=len(raw), limit=MAX_FILE_BYTES))]
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CourseFormatError([FormatProblem(file, line, _("файл не в кодировке UTF-8"))]) from exc


def split_front_matter(text: str, *, file: str) -> tuple[dict[str, Any], str, int]:
    """Return (front matter, body, line the body starts on)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise CourseFormatError([FormatProblem(file, 1, _("файл должен начинаться с заголовка (front matter): строки «---»"))])
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise CourseFormatError([FormatProblem(file, 1, _("заголовок (front matter) не закрыт строкой «---»"))]) from None
    try:
        meta = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = (mark.line + 2) if mark is not None else 2
        problem = getattr(exc, "problem", None) or str(exc)
        raise CourseFormatError(
            [FormatProblem(file, line, _("заголовок (front matter) — неверный YAML: {problem}").format(problem=problem))]
        ) from exc
    if not isinstance(meta, dict):
        raise CourseFormatError([FormatProblem(file, 2, _("заголовок (front matter) должен состоять из строк «ключ: значение»"))])
    return meta, "\n".join(lines[end + 1 :]), end + 2


def check_meta(
    meta: dict[str, Any], schema: Mapping[str, type], *, file: str, optional: Mapping[str, type] | None = None
) -> list[FormatProblem]:
    """What is wrong with front matter ``meta`` against ``schema`` (key -> type); a number given for a string becomes one."""
    problems = []
    optional = optional or {}
    for key, value in meta.items():
        if key in optional:
            if not isinstance(value, optional[key]):
                problems.append(FormatProblem(file, 2, _wrong_type_message().format(key=key, kind=optional[key].__name__)))
        elif key not in schema:
            problems.append(
                FormatProblem(
                    file, 2, _("неизвестное поле заголовка «{key}» (известные: {known})").format(key=key, known=", ".join(schema))
                )
            )
    for key, kind in schema.items():
        if key not in meta:
            problems.append(FormatProblem(file, 2, _("в заголовке нет поля «{key}»").format(key=key)))
        elif kind is str and isinstance(meta[key], (int, float)) and not isinstance(meta[key], bool):
            meta[key] = str(meta[key])
        elif not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            problems.append(FormatProblem(file, 2, _wrong_type_message().format(key=key, kind=kind.__name__)))
    return problems


def parse_course(text: str, *, file: str = "course.md") -> ParsedCourse:
    meta, body, _ = split_front_matter(text, file=file)
    problems = check_meta(meta, COURSE_KEYS, file=file, optional=COURSE_OPTIONAL_KEYS)
    if not problems and not KEY_RE.match(meta["slug"]):
        problems.append(FormatProblem(file, 2, slug_message()))
    if problems:
        raise CourseFormatError(problems)
    return ParsedCourse(meta=meta, body=body)


def chapter_source_compose(meta: Mapping[str, Any], body: str) -> str:
    """A chapter file from its front matter fields and Markdown body, keys in the documented order."""
    ordered = {key: meta[key] for key in CHAPTER_KEYS if key in meta}
    ordered.update({key: meta[key] for key in CHAPTER_OPTIONAL_KEYS if meta.get(key)})
    front = yaml.safe_dump(ordered, allow_unicode=True, sort_keys=False, default_flow_style=False, width=1000)
    return f"---\n{front}---\n{body.lstrip(chr(10))}" if body.strip() else f"---\n{front}---\n"
