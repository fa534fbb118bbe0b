"""Reading the course format (docs/course-format.md): front matter, cells, exercises.

Pure functions over text: every problem becomes a ``FormatProblem`` with file
and line, so the loader, the linter and the editor report the same errors.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from markdown_it import MarkdownIt
from mdit_py_plugins.container import container_plugin

from lessons.checks import check_leaks

BROKERS = ("kafka", "rabbitmq", "nats", "activemq")
CELL_ROLES = ("run", "setup", "starter", "solution", "check")
EXERCISE_ROLES = ("starter", "solution", "check")
CELL_ATTRIBUTES = ("id", "broker", "role", "timeout", "expect")
#: Roles whose output the course walk reads, so only they may say what it must contain.
EXPECT_ROLES = ("run", "setup", "solution")
MAX_TIMEOUT_S = 300
DEFAULT_TIMEOUT_S = 30
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
COURSE_KEYS = {"title": str, "slug": str, "language": str}
#: Keys a course.md may have: ``translation_of`` names the slug of the course this one translates.
COURSE_OPTIONAL_KEYS = {"translation_of": str}


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


def structure_parser() -> MarkdownIt:
    """The parser that finds cells and exercise blocks (the renderer adds its plugins on top)."""
    return MarkdownIt("commonmark").use(container_plugin, name="exercise")


def decode_source(raw: bytes, *, file: str) -> str:
    """Bytes of a course file as text; anything but UTF-8 is a located error."""
    if len(raw) > MAX_FILE_BYTES:
        raise CourseFormatError([FormatProblem(file, 1, f"file is {len(raw)} bytes; the limit is {MAX_FILE_BYTES}")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CourseFormatError([FormatProblem(file, line, "file is not UTF-8 text")]) from exc


def split_front_matter(text: str, *, file: str) -> tuple[dict[str, Any], str, int]:
    """Return (front matter, body, line the body starts on)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise CourseFormatError([FormatProblem(file, 1, "file must start with front matter: a line '---'")])
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise CourseFormatError([FormatProblem(file, 1, "front matter is not closed by a line '---'")]) from None
    try:
        meta = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = (mark.line + 2) if mark is not None else 2
        problem = getattr(exc, "problem", None) or str(exc)
        raise CourseFormatError([FormatProblem(file, line, f"front matter is not valid YAML: {problem}")]) from exc
    if not isinstance(meta, dict):
        raise CourseFormatError([FormatProblem(file, 2, "front matter must be a mapping of keys to values")])
    return meta, "\n".join(lines[end + 1 :]), end + 2


def _check_meta(
    meta: dict[str, Any], schema: Mapping[str, type], *, file: str, optional: Mapping[str, type] | None = None
) -> list[FormatProblem]:
    problems = []
    optional = optional or {}
    for key, value in meta.items():
        if key in optional:
            if not isinstance(value, optional[key]):
                problems.append(FormatProblem(file, 2, f"front matter '{key}' must be {optional[key].__name__}"))
        elif key not in schema:
            problems.append(FormatProblem(file, 2, f"unknown front matter key '{key}' (known: {', '.join(schema)})"))
    for key, kind in schema.items():
        if key not in meta:
            problems.append(FormatProblem(file, 2, f"front matter lacks '{key}'"))
        elif kind is str and isinstance(meta[key], (int, float)) and not isinstance(meta[key], bool):
            meta[key] = str(meta[key])
        elif not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            problems.append(FormatProblem(file, 2, f"front matter '{key}' must be {kind.__name__}"))
    return problems


def parse_course(text: str, *, file: str = "course.md") -> ParsedCourse:
    meta, body, _ = split_front_matter(text, file=file)
    problems = _check_meta(meta, COURSE_KEYS, file=file, optional=COURSE_OPTIONAL_KEYS)
    if not problems and not KEY_RE.match(meta["slug"]):
        problems.append(FormatProblem(file, 2, "slug must be lower-case letters, digits and dashes"))
    if problems:
        raise CourseFormatError(problems)
    return ParsedCourse(meta=meta, body=body)


def parse_cell_info(info: str) -> tuple[str, dict[str, str]] | None:
    """``python cell id=x role=check`` -> ("python", {...}); None for fences that are not cells."""
    words = info.strip().split(None, 2)
    if len(words) < 2 or words[1] != "cell":
        return None
    attrs: dict[str, str] = {}
    for word in shlex.split(words[2]) if len(words) > 2 else []:
        name, sep, value = word.partition("=")
        attrs[name] = value if sep else ""
    return words[0], attrs


def parse_chapter(text: str, *, file: str) -> ParsedChapter:
    """Parse and validate a chapter; raises CourseFormatError listing every problem."""
    meta, body, body_line = split_front_matter(text, file=file)
    problems = _check_meta(meta, CHAPTER_KEYS, file=file)
    if problems:
        raise CourseFormatError(problems)
    if not KEY_RE.match(meta["slug"]):
        problems.append(FormatProblem(file, 2, "slug must be lower-case letters, digits and dashes"))
    if meta["broker"] not in BROKERS:
        problems.append(FormatProblem(file, 2, f"broker must be one of {', '.join(BROKERS)}"))
    if not all(isinstance(o, str) for o in meta["objectives"]):
        problems.append(FormatProblem(file, 2, "objectives must be a list of strings"))

    cells: list[ParsedCell] = []
    exercises: list[ParsedExercise] = []
    seen: set[str] = set()
    current: dict[str, Any] | None = None  # the open exercise block
    pending_title = False

    def close_exercise(line: int) -> None:
        assert current is not None
        roles = [c.role for c in cells if c.exercise == current["key"]]
        for role in EXERCISE_ROLES:
            if roles.count(role) != 1:
                problems.append(
                    FormatProblem(
                        file,
                        current["line"],
                        f"exercise '{current['key']}' needs exactly one '{role}' cell, has {roles.count(role)}",
                    )
                )
        if not current["hints"]:
            problems.append(FormatProblem(file, current["line"], f"exercise '{current['key']}' needs at least one hint fence"))
        problems.extend(_check_leaks(file, [c for c in cells if c.exercise == current["key"]]))
        if not current["title"]:
            problems.append(FormatProblem(file, current["line"], f"exercise '{current['key']}' needs a heading as its title"))
        exercises.append(ParsedExercise(current["key"], current["title"], current["line"], tuple(current["hints"])))

    tokens = structure_parser().parse(body)
    for index, token in enumerate(tokens):
        line = body_line + (token.map[0] if token.map else 0)
        if token.type == "container_exercise_open":
            key = dict(a.partition("=")[::2] for a in token.info.split()[1:]).get("id", "")
            if current is not None:
                problems.append(FormatProblem(file, line, "exercises cannot be nested"))
            elif not KEY_RE.match(key):
                problems.append(FormatProblem(file, line, "exercise needs an id=... of lower-case letters, digits and dashes"))
            else:
                current = {"key": key, "line": line, "title": "", "hints": []}
                pending_title = True
            continue
        if token.type == "container_exercise_close":
            if current is not None:
                close_exercise(line)
            current = None
            continue
        if token.type == "heading_open" and current is not None and pending_title:
            current["title"] = tokens[index + 1].content.strip()
            pending_title = False
            continue
        if token.type != "fence":
            continue
        if token.info.strip() == "hint":
            if current is None:
                problems.append(FormatProblem(file, line, "a hint fence must be inside an exercise"))
            else:
                current["hints"].append(token.content.rstrip("\n"))
            continue
        parsed = parse_cell_info(token.info)
        if parsed is None:
            continue
        language, attrs = parsed
        if language != "python":
            problems.append(FormatProblem(file, line, f"cells are Python; '{language}' is not supported"))
        unknown = [a for a in attrs if a not in CELL_ATTRIBUTES]
        if unknown:
            problems.append(
                FormatProblem(file, line, f"unknown cell attribute(s) {', '.join(unknown)} (known: {', '.join(CELL_ATTRIBUTES)})")
            )
        key = attrs.get("id", "")
        if not KEY_RE.match(key):
            problems.append(FormatProblem(file, line, "cell needs an id=... of lower-case letters, digits and dashes"))
        elif key in seen:
            problems.append(FormatProblem(file, line, f"cell id '{key}' is used twice in this chapter"))
        seen.add(key)
        role = attrs.get("role", "run")
        if role not in CELL_ROLES:
            problems.append(FormatProblem(file, line, f"role must be one of {', '.join(CELL_ROLES)}"))
        elif (role in EXERCISE_ROLES) != (current is not None) and role != "run":
            where = "inside" if role in EXERCISE_ROLES else "outside"
            problems.append(FormatProblem(file, line, f"a '{role}' cell must be {where} an exercise"))
        broker = attrs.get("broker", meta["broker"])
        if broker not in BROKERS:
            problems.append(FormatProblem(file, line, f"broker must be one of {', '.join(BROKERS)}"))
        try:
            timeout = int(attrs.get("timeout", DEFAULT_TIMEOUT_S))
            if not 1 <= timeout <= MAX_TIMEOUT_S:
                raise ValueError
        except ValueError:
            problems.append(FormatProblem(file, line, f"timeout must be a whole number of seconds from 1 to {MAX_TIMEOUT_S}"))
            timeout = DEFAULT_TIMEOUT_S
        expect = attrs.get("expect")
        if expect is not None:
            try:
                re.compile(expect)
            except re.error as exc:
                problems.append(FormatProblem(file, line, f"expect of cell '{key}' is not a regular expression: {exc}"))
            if not expect:
                problems.append(FormatProblem(file, line, f"expect of cell '{key}' is empty"))
            if role not in EXPECT_ROLES:
                problems.append(FormatProblem(file, line, f"expect is for {', '.join(EXPECT_ROLES)} cells, not '{role}'"))
        try:
            ast.parse(token.content, filename=f"{file}:{key}")
        except SyntaxError as exc:
            problems.append(FormatProblem(file, line + (exc.lineno or 0), f"cell '{key}' does not parse: {exc.msg}"))
        cells.append(
            ParsedCell(
                key, role, broker, timeout, token.content, line, current["key"] if current and role != "run" else None, expect
            )
        )
    if current is not None:
        problems.append(FormatProblem(file, current["line"], f"exercise '{current['key']}' is not closed by ':::'"))
    if problems:
        raise CourseFormatError(problems)
    return ParsedChapter(meta=meta, body=body, body_line=body_line, cells=tuple(cells), exercises=tuple(exercises))


def _check_leaks(file: str, cells: list[ParsedCell]) -> list[FormatProblem]:
    """A check's failure messages must not give away its exercise's solution (lessons/checks.py)."""
    roles = {c.role: c for c in cells}
    check, solution = roles.get("check"), roles.get("solution")
    if check is None or solution is None:
        return []
    return [
        FormatProblem(
            file,
            check.line + line,
            f"check '{check.key}' gives the solution away: its failure message contains `{leak}`; "
            "say what is wrong in the broker instead",
        )
        for line, leak in check_leaks(check=check.code, solution=solution.code)
    ]


def chapter_source_compose(meta: Mapping[str, Any], body: str) -> str:
    """A chapter file from its front matter fields and Markdown body, keys in the documented order."""
    ordered = {key: meta[key] for key in CHAPTER_KEYS if key in meta}
    front = yaml.safe_dump(ordered, allow_unicode=True, sort_keys=False, default_flow_style=False, width=1000)
    return f"---\n{front}---\n{body.lstrip(chr(10))}" if body.strip() else f"---\n{front}---\n"
