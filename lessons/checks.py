"""Exercise checks: the reason a learner reads when one fails, and the guard that keeps the solution out of it.

A reason says what is wrong with the broker's state ("the topic orders holds 0
records"), never how to write the code: that is what the hints are for, one at
a time. The guard is textual: a reason may not contain a line of the solution,
nor one of its calls (``channel.queue_bind(``), whitespace and quotes aside; of a
solution typed in the terminal, nor one of its commands or options (``nats consumer add``,
``--max-deliver``).
"""

from __future__ import annotations

import ast
import functools
import itertools
import re
import shlex
from collections.abc import Iterator
from typing import Any

from django.utils.translation import gettext

from .course_files import FormatProblem, ParsedCell

#: Shorter solution lines (``try:``, ``)``, ``import os``) say nothing of the solution.
MIN_LINE_CHARS = 10
_SUBCOMMAND = re.compile(r"^[a-z][a-z0-9-]*$")
_CALL_NAME = re.compile(r"^(?:[A-Za-z_][\w]*\.)+[A-Za-z_]\w*$|^[A-Z]\w*$")


def check_reason(result: dict[str, Any]) -> str:
    """The learner-facing reason from a failed check's output: its AssertionError message."""
    if result.get("reason") == "timeout":
        return gettext("Проверка не уложилась во время.")
    output = (result.get("output") or "").strip().splitlines()
    for line in reversed(output):
        if line.startswith("AssertionError"):
            message = line.partition(":")[2].strip()
            return message or gettext("Проверка не пройдена.")
    return output[-1] if output else gettext("Проверка не пройдена.")


def _normal(text: str) -> str:
    """Text compared as code: no whitespace, one kind of quote, no Markdown backticks."""
    return re.sub(r"\s+", "", text).replace("'", '"').replace("`", "")


def _shell_fragments(solution: str) -> Iterator[str]:
    """Of shell commands: each command with its subcommands (``nats stream add``) and each long option (``--retention``)."""
    for raw in solution.splitlines():
        try:
            words = shlex.split(raw, comments=True)
        except ValueError:
            words = raw.split()
        command = list(itertools.takewhile(_SUBCOMMAND.match, words))
        if len(command) > 1:
            yield " ".join(command)
        yield from (word.partition("=")[0] for word in words if word.startswith("--") and len(word) > 3)


def solution_fragments(solution: str, *, shell: bool = False) -> dict[str, str]:
    """What of the solution a reason must not contain, compared as code, each with how the solution writes it.

    Its code lines, and the calls it makes (``admin.create_topics(``); of shell commands
    (``shell``: a solution typed in the terminal), the commands and their options.
    """
    return dict(_solution_fragments(solution, shell))


@functools.lru_cache(maxsize=256)
def _solution_fragments(solution: str, shell: bool) -> tuple[tuple[str, str], ...]:
    """solution_fragments, kept: a check's every reason is held against the same solution (a course's
    import compares hundreds)."""
    fragments: dict[str, str] = {}
    for raw in solution.splitlines():
        normal = _normal(raw)
        if len(normal) >= MIN_LINE_CHARS and not normal.startswith("#"):
            fragments.setdefault(normal, raw.strip())
    if shell:
        for piece in _shell_fragments(solution):
            fragments.setdefault(_normal(piece), piece)
        return tuple(fragments.items())
    try:
        tree = ast.parse(solution)
    except SyntaxError:
        return tuple(fragments.items())
    lines = [line.encode() for line in solution.splitlines(keepends=True)]  # ast's columns count UTF-8 bytes
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.func.lineno == node.func.end_lineno:
            line = lines[node.func.lineno - 1]
            name = line[node.func.col_offset : node.func.end_col_offset].decode(errors="replace")
            # Methods and constructors: print(, len( and the like are no one's solution.
            if _CALL_NAME.match(name):
                fragments.setdefault(_normal(name) + "(", name + "(")
    return tuple(fragments.items())


def reason_leaks(reason: str, solution: str, *, shell: bool = False) -> str | None:
    """The piece of ``solution`` (as the solution writes it) that ``reason`` gives away, or None."""
    text = _normal(reason)
    return next((raw for normal, raw in solution_fragments(solution, shell=shell).items() if normal in text), None)


def _texts(node: ast.AST) -> Iterator[str]:
    """The literal text of a message expression: strings, f-strings' fixed parts, concatenations."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.JoinedStr):
        yield "".join(v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "\0" for v in node.values)
    elif isinstance(node, ast.BinOp):
        left, right = list(_texts(node.left)), list(_texts(node.right))
        yield from left
        yield from right
        yield "".join(left) + "".join(right)
    else:
        for child in ast.iter_child_nodes(node):
            yield from _texts(child)


def check_messages(check: str) -> Iterator[tuple[int, str]]:
    """(line, text) of each failure message a check can give: ``assert x, msg`` and ``raise AssertionError(msg)``."""
    try:
        tree = ast.parse(check)
    except SyntaxError:
        return
    for node in ast.walk(tree):
        message: ast.AST | None = None
        if isinstance(node, ast.Assert):
            message = node.msg
        elif (
            isinstance(node, ast.Raise)
            and isinstance(node.exc, ast.Call)
            and getattr(node.exc.func, "id", "") == "AssertionError"
        ):
            message = node.exc.args[0] if node.exc.args else None
        if message is not None:
            for text in _texts(message):
                yield getattr(node, "lineno", 0), text


def check_leaks(*, check: str, solution: str, shell: bool = False) -> Iterator[tuple[int, str]]:
    """(line in the check, the solution's piece) for each failure message that gives the solution away."""
    told: set[int] = set()
    for line, text in check_messages(check):
        leak = reason_leaks(text, solution, shell=shell)
        if leak is not None and line not in told:
            told.add(line)
            yield line, leak


def check_leak_problems(file: str, cells: list[ParsedCell]) -> list[FormatProblem]:
    """A check's failure messages must not give away its exercise's solution (lessons/checks.py)."""
    roles = {c.role: c for c in cells}
    check, solution = roles.get("check"), roles.get("solution")
    if check is None or solution is None:
        return []
    return [
        FormatProblem(
            file,
            check.line + line,
            gettext(
                "проверка «{key}» выдаёт решение: в её сообщении об ошибке есть `{leak}`; скажите лучше, что не так в брокере"
            ).format(key=check.key, leak=leak),
        )
        for line, leak in check_leaks(check=check.code, solution=solution.code, shell=solution.language == "terminal")
    ]
