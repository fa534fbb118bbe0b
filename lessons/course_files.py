"""Reading the course format (docs/course-format.md): front matter, cells, exercises.

Pure functions over text: every problem becomes a ``FormatProblem`` with file
and line, so the loader, the linter and the editor report the same errors, in
the language active when the file is read (the editor's page, or LANGUAGE_CODE).
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.utils.translation import gettext as _
from markdown_it import MarkdownIt
from mdit_py_plugins.container import container_plugin

from lessons.checks import check_leaks
from sandboxes.brokers import broker_names

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


# Messages used in more than one place: functions, so each is in the language active when it is reported.
def _slug_message() -> str:
    return _("слаг — только строчные латинские буквы, цифры и дефисы")


def _broker_message() -> str:
    return _("брокер должен быть одним из: {brokers}").format(brokers=", ".join(broker_names()))


def _wrong_type_message() -> str:
    return _("поле заголовка «{key}» должно быть типа {kind}")


def _outside_message() -> str:
    return _("ячейка «{role}» должна быть вне упражнения")


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


def _check_meta(
    meta: dict[str, Any], schema: Mapping[str, type], *, file: str, optional: Mapping[str, type] | None = None
) -> list[FormatProblem]:
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
    problems = _check_meta(meta, COURSE_KEYS, file=file, optional=COURSE_OPTIONAL_KEYS)
    if not problems and not KEY_RE.match(meta["slug"]):
        problems.append(FormatProblem(file, 2, _slug_message()))
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
        problems.append(FormatProblem(file, 2, _slug_message()))
    if meta["broker"] not in broker_names():
        problems.append(FormatProblem(file, 2, _broker_message()))
    if not all(isinstance(o, str) for o in meta["objectives"]):
        problems.append(FormatProblem(file, 2, _("objectives должен быть списком строк")))

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
                        _("в упражнении «{key}» должна быть ровно одна ячейка «{role}», а их {count}").format(
                            key=current["key"], role=role, count=roles.count(role)
                        ),
                    )
                )
        if not current["hints"]:
            problems.append(
                FormatProblem(
                    file,
                    current["line"],
                    _("упражнению «{key}» нужна хотя бы одна подсказка (```hint)").format(key=current["key"]),
                )
            )
        problems.extend(_check_leaks(file, [c for c in cells if c.exercise == current["key"]]))
        if not current["title"]:
            problems.append(
                FormatProblem(
                    file, current["line"], _("упражнению «{key}» нужен заголовок — его название").format(key=current["key"])
                )
            )
        exercises.append(ParsedExercise(current["key"], current["title"], current["line"], tuple(current["hints"])))

    tokens = structure_parser().parse(body)
    for index, token in enumerate(tokens):
        line = body_line + (token.map[0] if token.map else 0)
        if token.type == "container_exercise_open":
            key = dict(a.partition("=")[::2] for a in token.info.split()[1:]).get("id", "")
            if current is not None:
                problems.append(FormatProblem(file, line, _("упражнения нельзя вкладывать друг в друга")))
            elif not KEY_RE.match(key):
                problems.append(
                    FormatProblem(file, line, _("упражнению нужен id=... из строчных латинских букв, цифр и дефисов"))
                )
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
                problems.append(FormatProblem(file, line, _("подсказка (```hint) должна быть внутри упражнения")))
            else:
                current["hints"].append(token.content.rstrip("\n"))
            continue
        parsed = parse_cell_info(token.info)
        if parsed is None:
            continue
        language, attrs = parsed
        if language != "python":
            problems.append(
                FormatProblem(file, line, _("ячейки пишутся на Python; «{language}» не поддерживается").format(language=language))
            )
        unknown = [a for a in attrs if a not in CELL_ATTRIBUTES]
        if unknown:
            problems.append(
                FormatProblem(
                    file,
                    line,
                    _("неизвестные атрибуты ячейки: {unknown} (известные: {known})").format(
                        unknown=", ".join(unknown), known=", ".join(CELL_ATTRIBUTES)
                    ),
                )
            )
        key = attrs.get("id", "")
        if not KEY_RE.match(key):
            problems.append(FormatProblem(file, line, _("ячейке нужен id=... из строчных латинских букв, цифр и дефисов")))
        elif key in seen:
            problems.append(FormatProblem(file, line, _("id ячейки «{key}» встречается в главе дважды").format(key=key)))
        seen.add(key)
        role = attrs.get("role", "run")
        if role not in CELL_ROLES:
            problems.append(
                FormatProblem(file, line, _("role должен быть одним из: {roles}").format(roles=", ".join(CELL_ROLES)))
            )
        elif (role in EXERCISE_ROLES) != (current is not None) and role != "run":
            where = _("ячейка «{role}» должна быть внутри упражнения") if role in EXERCISE_ROLES else _outside_message()
            problems.append(FormatProblem(file, line, where.format(role=role)))
        broker = attrs.get("broker", meta["broker"])
        if broker not in broker_names():
            problems.append(FormatProblem(file, line, _broker_message()))
        try:
            timeout = int(attrs.get("timeout", DEFAULT_TIMEOUT_S))
            if not 1 <= timeout <= MAX_TIMEOUT_S:
                raise ValueError
        except ValueError:
            problems.append(
                FormatProblem(file, line, _("timeout — целое число секунд от 1 до {limit}").format(limit=MAX_TIMEOUT_S))
            )
            timeout = DEFAULT_TIMEOUT_S
        expect = attrs.get("expect")
        if expect is not None:
            try:
                re.compile(expect)
            except re.error as exc:
                message = _("expect ячейки «{key}» — не регулярное выражение: {error}").format(key=key, error=exc)
                problems.append(FormatProblem(file, line, message))
            if not expect:
                problems.append(FormatProblem(file, line, _("expect ячейки «{key}» пуст").format(key=key)))
            if role not in EXPECT_ROLES:
                message = _("expect бывает у ячеек {roles}, не у «{role}»").format(roles=", ".join(EXPECT_ROLES), role=role)
                problems.append(FormatProblem(file, line, message))
        try:
            ast.parse(token.content, filename=f"{file}:{key}")
        except SyntaxError as exc:
            problems.append(
                FormatProblem(
                    file, line + (exc.lineno or 0), _("ячейка «{key}» — не код на Python: {error}").format(key=key, error=exc.msg)
                )
            )
        cells.append(
            ParsedCell(
                key, role, broker, timeout, token.content, line, current["key"] if current and role != "run" else None, expect
            )
        )
    if current is not None:
        problems.append(
            FormatProblem(file, current["line"], _("упражнение «{key}» не закрыто строкой «:::»").format(key=current["key"]))
        )
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
            _(
                "проверка «{key}» выдаёт решение: в её сообщении об ошибке есть `{leak}`; скажите лучше, что не так в брокере"
            ).format(key=check.key, leak=leak),
        )
        for line, leak in check_leaks(check=check.code, solution=solution.code)
    ]


def chapter_source_compose(meta: Mapping[str, Any], body: str) -> str:
    """A chapter file from its front matter fields and Markdown body, keys in the documented order."""
    ordered = {key: meta[key] for key in CHAPTER_KEYS if key in meta}
    front = yaml.safe_dump(ordered, allow_unicode=True, sort_keys=False, default_flow_style=False, width=1000)
    return f"---\n{front}---\n{body.lstrip(chr(10))}" if body.strip() else f"---\n{front}---\n"
