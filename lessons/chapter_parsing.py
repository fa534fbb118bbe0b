"""Reading a chapter file (docs/course-format.md): its front matter, cells and exercises, every problem located.

Pure functions over text, like course_files.py, whose values and front matter
reading they build on: the loader, the linter and the editor report the same errors.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.container import container_plugin

from lessons.checks import check_leak_problems
from sandboxes.brokers import broker_names

from .course_files import (
    CHAPTER_KEYS,
    CHAPTER_OPTIONAL_KEYS,
    KEY_RE,
    CourseFormatError,
    FormatProblem,
    ParsedCell,
    ParsedChapter,
    ParsedExercise,
    check_meta,
    slug_message,
    split_front_matter,
)
from .steps import step_problems

CELL_ROLES = ("run", "setup", "starter", "solution", "check")
EXERCISE_ROLES = ("starter", "solution", "check")
CELL_ATTRIBUTES = ("id", "broker", "role", "timeout", "expect")
#: A ```terminal fence: a command block; with a role, an exercise's starter or solution typed in the terminal.
TERMINAL_ATTRIBUTES = ("id", "broker", "role", "timeout")
TERMINAL_ROLES = ("starter", "solution")
#: Roles whose output the course walk reads, so only they may say what it must contain.
EXPECT_ROLES = ("run", "setup", "solution")
MAX_TIMEOUT_S = 300
DEFAULT_TIMEOUT_S = 30


# Messages used in more than one place: functions, so each is in the language active when it is reported.
def _broker_message() -> str:
    return _("брокер должен быть одним из: {brokers}").format(brokers=", ".join(broker_names()))


def _outside_message() -> str:
    return _("ячейка «{role}» должна быть вне упражнения")


def structure_parser() -> MarkdownIt:
    """The parser that finds cells and exercise blocks (the renderer adds its plugins on top)."""
    return MarkdownIt("commonmark").use(container_plugin, name="exercise")


def _attributes(words: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for word in shlex.split(words):
        name, sep, value = word.partition("=")
        attrs[name] = value if sep else ""
    return attrs


def parse_terminal_info(info: str) -> dict[str, str] | None:
    """``terminal broker=nats role=solution id=x`` -> its attributes; None for fences that are not terminal blocks."""
    words = info.strip().split(None, 1)
    if not words or words[0] != "terminal":
        return None
    return _attributes(words[1]) if len(words) > 1 else {}


def parse_cell_info(info: str) -> tuple[str, dict[str, str]] | None:
    """``python cell id=x role=check`` -> ("python", {...}); None for fences that are not cells."""
    words = info.strip().split(None, 2)
    if len(words) < 2 or words[1] != "cell":
        return None
    return words[0], _attributes(words[2]) if len(words) > 2 else {}


@dataclass
class _OpenExercise:
    """An exercise block read up to its closing ``:::``."""

    key: str
    line: int
    title: str = ""
    hints: list[str] = field(default_factory=list)


def parse_chapter(text: str, *, file: str) -> ParsedChapter:
    """Parse and validate a chapter; raises CourseFormatError listing every problem."""
    meta, body, body_line = split_front_matter(text, file=file)
    problems = check_meta(meta, CHAPTER_KEYS, file=file, optional=CHAPTER_OPTIONAL_KEYS)
    if problems:
        raise CourseFormatError(problems)
    problems += step_problems(meta, body, file=file, body_line=body_line)
    if not KEY_RE.match(meta["slug"]):
        problems.append(FormatProblem(file, 2, slug_message()))
    if meta["broker"] not in broker_names():
        problems.append(FormatProblem(file, 2, _broker_message()))
    if not all(isinstance(o, str) for o in meta["objectives"]):
        problems.append(FormatProblem(file, 2, _("objectives должен быть списком строк")))

    cells: list[ParsedCell] = []
    exercises: list[ParsedExercise] = []
    seen: set[str] = set()
    current: _OpenExercise | None = None
    pending_title = False

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
                current = _OpenExercise(key, line)
                pending_title = True
            continue
        if token.type == "container_exercise_close":
            if current is not None:
                own = [c for c in cells if c.exercise == current.key]
                problems.extend(_exercise_problems(file, current, own))
                exercises.append(ParsedExercise(current.key, current.title, current.line, tuple(current.hints)))
            current = None
            continue
        if token.type == "heading_open" and current is not None and pending_title:
            current.title = tokens[index + 1].content.strip()
            pending_title = False
            continue
        if token.type != "fence":
            continue
        if token.info.strip() == "hint":
            if current is None:
                problems.append(FormatProblem(file, line, _("подсказка (```hint) должна быть внутри упражнения")))
            else:
                current.hints.append(token.content.rstrip("\n"))
            continue
        terminal = parse_terminal_info(token.info)
        if terminal is not None:
            if "role" in terminal:
                exercise = current.key if current else None
                cell, cell_problems = _read_terminal_cell(token, terminal, file=file, line=line, meta=meta, exercise=exercise)
                problems.extend(cell_problems + _key_problems(cell.key, seen, file=file, line=line))
                cells.append(cell)
            else:
                problems.extend(_terminal_block_problems(terminal, file=file, line=line))
            continue
        parsed = parse_cell_info(token.info)
        if parsed is None:
            continue
        cell, cell_problems = _read_cell(
            token, parsed, file=file, line=line, meta=meta, exercise=current.key if current else None, seen=seen
        )
        problems.extend(cell_problems)
        cells.append(cell)
    if current is not None:
        problems.append(
            FormatProblem(file, current.line, _("упражнение «{key}» не закрыто строкой «:::»").format(key=current.key))
        )
    if problems:
        raise CourseFormatError(problems)
    return ParsedChapter(meta=meta, body=body, body_line=body_line, cells=tuple(cells), exercises=tuple(exercises))


def _read_cell(
    token: Token,
    parsed: tuple[str, dict[str, str]],
    *,
    file: str,
    line: int,
    meta: dict[str, Any],
    exercise: str | None,
    seen: set[str],
) -> tuple[ParsedCell, list[FormatProblem]]:
    """One cell fence (inside the exercise ``exercise``, if any) and what is wrong with it; adds its id to ``seen``."""
    problems: list[FormatProblem] = []

    def here(message: str) -> FormatProblem:
        return FormatProblem(file, line, message)

    language, attrs = parsed
    if language != "python":
        problems.append(here(_("ячейки пишутся на Python; «{language}» не поддерживается").format(language=language)))
    unknown = [a for a in attrs if a not in CELL_ATTRIBUTES]
    if unknown:
        problems.append(
            here(
                _("неизвестные атрибуты ячейки: {unknown} (известные: {known})").format(
                    unknown=", ".join(unknown), known=", ".join(CELL_ATTRIBUTES)
                )
            )
        )
    key = attrs.get("id", "")
    problems.extend(_key_problems(key, seen, file=file, line=line))
    role = attrs.get("role", "run")
    if role not in CELL_ROLES:
        problems.append(here(_("role должен быть одним из: {roles}").format(roles=", ".join(CELL_ROLES))))
    elif (role in EXERCISE_ROLES) != (exercise is not None) and role != "run":
        where = _("ячейка «{role}» должна быть внутри упражнения") if role in EXERCISE_ROLES else _outside_message()
        problems.append(here(where.format(role=role)))
    broker = attrs.get("broker", meta["broker"])
    if broker not in broker_names():
        problems.append(here(_broker_message()))
    timeout = _timeout(attrs, problems, file=file, line=line)
    expect = attrs.get("expect")
    if expect is not None:
        problems.extend(_expect_problems(expect, file=file, line=line, key=key, role=role))
    try:
        ast.parse(token.content, filename=f"{file}:{key}")
    except SyntaxError as exc:
        problems.append(
            FormatProblem(
                file, line + (exc.lineno or 0), _("ячейка «{key}» — не код на Python: {error}").format(key=key, error=exc.msg)
            )
        )
    owner = exercise if role != "run" else None
    return ParsedCell(key, role, broker, timeout, token.content, line, owner, expect), problems


def _timeout(attrs: dict[str, str], problems: list[FormatProblem], *, file: str, line: int) -> int:
    """The ``timeout=`` of a cell, or the default with a problem noted when it is not 1..MAX_TIMEOUT_S seconds."""
    try:
        timeout = int(attrs.get("timeout", DEFAULT_TIMEOUT_S))
        if 1 <= timeout <= MAX_TIMEOUT_S:
            return timeout
    except ValueError:
        pass
    problems.append(FormatProblem(file, line, _("timeout — целое число секунд от 1 до {limit}").format(limit=MAX_TIMEOUT_S)))
    return DEFAULT_TIMEOUT_S


def _key_problems(key: str, seen: set[str], *, file: str, line: int) -> list[FormatProblem]:
    """A cell's id must be a key, once in the chapter; adds it to ``seen``."""
    problems = []
    if not KEY_RE.match(key):
        problems.append(FormatProblem(file, line, _("ячейке нужен id=... из строчных латинских букв, цифр и дефисов")))
    elif key in seen:
        problems.append(FormatProblem(file, line, _("id ячейки «{key}» встречается в главе дважды").format(key=key)))
    seen.add(key)
    return problems


def _terminal_block_problems(attrs: dict[str, str], *, file: str, line: int) -> list[FormatProblem]:
    """A ```terminal fence's attributes (with a role it is an exercise's cell, read by :func:`_read_terminal_cell`)."""
    unknown = ", ".join(a for a in attrs if a not in TERMINAL_ATTRIBUTES)
    message = _("неизвестные атрибуты блока terminal: {unknown} (известные: {known})")
    problems = (
        [FormatProblem(file, line, message.format(unknown=unknown, known=", ".join(TERMINAL_ATTRIBUTES)))] if unknown else []
    )
    if attrs.get("broker", broker_names()[0]) not in broker_names():
        problems.append(FormatProblem(file, line, _broker_message()))
    return problems


def _read_terminal_cell(
    token: Token, attrs: dict[str, str], *, file: str, line: int, meta: dict[str, Any], exercise: str | None
) -> tuple[ParsedCell, list[FormatProblem]]:
    """A ```terminal fence with a role: an exercise's starter or solution done in the sandbox's terminal."""
    problems = _terminal_block_problems(attrs, file=file, line=line)
    role = attrs.get("role", "")
    if role not in TERMINAL_ROLES:
        message = _("role блока terminal должен быть одним из: {roles}").format(roles=", ".join(TERMINAL_ROLES))
        problems.append(FormatProblem(file, line, message))
    elif exercise is None:
        problems.append(FormatProblem(file, line, _("ячейка «{role}» должна быть внутри упражнения").format(role=role)))
    timeout = _timeout(attrs, problems, file=file, line=line)
    broker = attrs.get("broker", meta["broker"])
    return ParsedCell(attrs.get("id", ""), role, broker, timeout, token.content, line, exercise, language="terminal"), problems


def _expect_problems(expect: str, *, file: str, line: int, key: str, role: str) -> list[FormatProblem]:
    """What is wrong with a cell's ``expect=``: it must be a non-empty regular expression on a role the walk reads."""
    problems = []

    def here(message: str) -> FormatProblem:
        return FormatProblem(file, line, message)

    try:
        re.compile(expect)
    except re.error as exc:
        message = _("expect ячейки «{key}» — не регулярное выражение: {error}").format(key=key, error=exc)
        problems.append(here(message))
    if not expect:
        problems.append(here(_("expect ячейки «{key}» пуст").format(key=key)))
    if role not in EXPECT_ROLES:
        message = _("expect бывает у ячеек {roles}, не у «{role}»").format(roles=", ".join(EXPECT_ROLES), role=role)
        problems.append(here(message))
    return problems


def _exercise_problems(file: str, exercise: _OpenExercise, cells: list[ParsedCell]) -> list[FormatProblem]:
    """What is wrong with an exercise at its closing line: its cells (one of each role), hints, title, leaks."""
    problems = []

    def here(message: str) -> FormatProblem:
        return FormatProblem(file, exercise.line, message)

    roles = [c.role for c in cells]
    for role in EXERCISE_ROLES:
        if roles.count(role) != 1:
            problems.append(
                here(
                    _("в упражнении «{key}» должна быть ровно одна ячейка «{role}», а их {count}").format(
                        key=exercise.key, role=role, count=roles.count(role)
                    )
                )
            )
    by_role = {c.role: c for c in cells}
    starter, solution, check = (by_role.get(role) for role in EXERCISE_ROLES)
    if starter and solution and starter.language != solution.language:
        message = _("в упражнении «{key}» заготовка и решение должны быть обе ячейками Python или обе блоками terminal")
        problems.append(here(message.format(key=exercise.key)))
    if check and solution and check.broker != solution.broker:
        message = _("в упражнении «{key}» проверка и решение должны работать с одним брокером")
        problems.append(here(message.format(key=exercise.key)))
    if not exercise.hints:
        problems.append(here(_("упражнению «{key}» нужна хотя бы одна подсказка (```hint)").format(key=exercise.key)))
    problems.extend(check_leak_problems(file, cells))
    if not exercise.title:
        problems.append(here(_("упражнению «{key}» нужен заголовок — его название").format(key=exercise.key)))
    return problems
