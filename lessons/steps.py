"""A long chapter in steps: parts of 15–25 minutes that the learner passes one after another.

A chapter names its steps in its front matter, by the heading (``##`` or ``###``) each begins with::

    steps:
      - Зачем нужен брокер
      - Kafka изнутри

The first step also holds the text before the first heading, and each step runs to the next
one's heading. A step's minutes are the chapter's ``estimated_minutes`` shared by what the
step holds: its words, read at ``WORDS_PER_MINUTE``, and ``CELL_MINUTES`` per cell to run.
A chapter of ``STEPS_FROM_MINUTES`` or more must have steps, and no step may be longer than
``STEP_MAX_MINUTES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from typing import Any

from django.utils.translation import gettext as _
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.container import container_plugin

from .course_files import FormatProblem

STEPS_FROM_MINUTES = 60
STEP_MAX_MINUTES = 30
WORDS_PER_MINUTE = 120
CELL_MINUTES = 1.5


@dataclass(frozen=True)
class Step:
    number: int  # 1-based
    title: str  # the heading it begins with, as written
    section: int  # that heading's place among the chapter's h2 and h3 headings (0-based)
    minutes: int


@dataclass(frozen=True)
class _Section:
    title: str
    line: int  # 0-based, in the body
    words: int
    cells: int


def _sections(body: str) -> list[_Section]:
    """The body's sections and sub-sections (h2, h3, not an exercise's), each with what it holds up to the next heading."""
    tokens = MarkdownIt("commonmark").use(container_plugin, name="exercise").parse(body)
    starts = [
        (i, tokens[i + 1].content.strip())
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.tag in ("h2", "h3") and t.level == 0
    ]
    sections = []
    for n, (index, title) in enumerate(starts):
        first = 0 if n == 0 else index
        last = starts[n + 1][0] if n + 1 < len(starts) else len(tokens)
        words = cells = 0
        for token in tokens[first:last]:
            if token.type == "fence" and " cell" in f" {token.info}" and "role=check" not in token.info:
                cells += 1
            elif token.type == "inline":
                words += len(re.findall(r"\w+", token.content))
        sections.append(_Section(title, (tokens[index].map or [0])[0], words, cells))
    return sections


def chapter_steps(meta: dict[str, Any], body: str) -> tuple[Step, ...]:
    """The chapter's steps with their minutes; the titles that name no section are left out (see ``step_problems``)."""
    titles = [str(t).strip() for t in meta.get("steps") or []]
    sections = _sections(body)
    index = {s.title: i for i, s in reversed(list(enumerate(sections)))}
    begins = sorted({index[t] for t in titles if t in index} | ({0} if titles and sections else set()))
    if not begins:
        return ()
    weights = []
    for n, first in enumerate(begins):
        held = sections[first : begins[n + 1] if n + 1 < len(begins) else len(sections)]
        weights.append(sum(s.words / WORDS_PER_MINUTE + s.cells * CELL_MINUTES for s in held) or 1.0)
    total_minutes = int(meta.get("estimated_minutes") or 0)
    return tuple(
        Step(n, sections[first].title, first, max(1, round(total_minutes * weight / sum(weights))))
        for n, (first, weight) in enumerate(zip(begins, weights, strict=True), start=1)
    )


def step_problems(meta: dict[str, Any], body: str, *, file: str, body_line: int) -> list[FormatProblem]:
    """What is wrong with the chapter's steps: a title naming no section, the order, missing steps, a step too long."""
    titles = meta.get("steps")
    minutes = int(meta.get("estimated_minutes") or 0)
    if not titles:
        if minutes >= STEPS_FROM_MINUTES:
            message = _(
                "глава на {minutes} мин: разбейте её на шаги по 15–25 минут (steps: заголовки разделов, с которых они начинаются)"
            )
            return [FormatProblem(file, 2, message.format(minutes=minutes))]
        return []
    if not all(isinstance(t, str) for t in titles):
        return [FormatProblem(file, 2, _("steps должен быть списком заголовков разделов"))]
    sections = _sections(body)
    places = {s.title: i for i, s in reversed(list(enumerate(sections)))}
    problems = []
    for title in titles:
        if title.strip() not in places:
            problems.append(
                FormatProblem(
                    file, 2, _("шаг «{title}»: в главе нет раздела или подраздела с таким заголовком").format(title=title)
                )
            )
    found = [places[t.strip()] for t in titles if t.strip() in places]
    if found and found[0] != 0:
        problems.append(
            FormatProblem(
                file, 2, _("первый шаг должен начинаться с первого заголовка главы: «{title}»").format(title=sections[0].title)
            )
        )
    if found != sorted(set(found)):
        problems.append(FormatProblem(file, 2, _("шаги должны идти в порядке разделов главы, без повторов")))
    if problems:
        return problems
    for step in chapter_steps(meta, body):
        if step.minutes > STEP_MAX_MINUTES:
            message = _("шаг «{title}» займёт около {minutes} мин, больше {limit}: начните в нём ещё один шаг")
            line = body_line + sections[step.section].line
            problems.append(
                FormatProblem(file, line, message.format(title=step.title, minutes=step.minutes, limit=STEP_MAX_MINUTES))
            )
    return problems


@dataclass(frozen=True)
class RenderedStep:
    """A step as the page shows it: its number, title as read, minutes, the anchor of its heading, and
    that heading's place among the chapter's h2/h3 (what progress is kept by: a step inserted before it
    does not move it, and every edition has it at the same place)."""

    number: int
    title: str
    minutes: int
    anchor: str
    section: int = 0


def steps_wrap(tokens: list[Token], steps: tuple[Step, ...], *, labels: dict[str, str]) -> tuple[RenderedStep, ...]:
    """Fold each step of the parsed chapter into ``<details class="step" id="step-N" open>``, its bar as the summary.

    Steps are found by their heading's text, in order; the last one closes before the footnotes.
    ``labels`` holds the UI's "step" and "minutes" formats ({n}, {total}; {minutes}).
    """
    heads = [i for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag in ("h2", "h3") and t.level == 0]
    found: list[tuple[int, Step, str, str]] = []
    for step in steps:
        start = found[-1][0] + 1 if found else 0
        index = next((i for i in heads if i >= start and tokens[i + 1].content.strip() == step.title), None)
        if index is None:
            continue
        plain = "".join(c.content for c in tokens[index + 1].children or () if c.type in ("text", "code_inline")).strip()
        found.append((0 if not found else index, step, plain, str(tokens[index].attrGet("id") or "")))
    if not found:
        return ()
    end = next((i for i, t in enumerate(tokens) if t.type == "footnote_block_open"), len(tokens))
    total = len(found)
    for n, (index, step, plain, _anchor) in reversed(list(enumerate(found, start=1))):
        bar = (
            f'<span class="step-number">{escape(labels["step"].format(n=n, total=total))}</span> '
            f'<span class="step-title">{escape(plain)}</span> '
            f'<span class="step-minutes">{escape(labels["minutes"].format(minutes=step.minutes))}</span>'
        )
        close = Token("html_block", "", 0)
        close.content = "</details>\n"
        tokens.insert(end, close)
        opening = Token("html_block", "", 0)
        opening.content = f'<details class="step" id="step-{n}" data-step="{n}" open><summary class="step-bar">{bar}</summary>\n'
        tokens.insert(index, opening)
        end = index
    return tuple(
        RenderedStep(n, plain, step.minutes, anchor, step.section) for n, (_i, step, plain, anchor) in enumerate(found, start=1)
    )
