"""Chapter Markdown to safe HTML: the parser and plugins, highlighting, cells, then nh3.

The same function renders a learner's page and an instructor's live preview,
so what an instructor sees is what a learner gets.
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.utils.translation import get_language, gettext
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.admon import admon_plugin
from mdit_py_plugins.anchors import anchors_plugin
from mdit_py_plugins.container import container_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.tasklists import tasklists_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from .chapter_parsing import parse_cell_info, parse_terminal_info
from .html_safety import sanitize
from .steps import RenderedStep, chapter_steps, steps_wrap

#: Bump when the output changes shape, so cached pages are rebuilt.
RENDER_VERSION = "9"
CACHE_SECONDS = 24 * 3600

_FORMATTER = HtmlFormatter(nowrap=True)


@dataclass(frozen=True)
class Heading:
    level: int
    anchor: str
    text: str


@dataclass(frozen=True)
class TocEntry:
    """A section of the table of contents: its number ("2", "2.1"), anchor, title and sub-sections."""

    number: str
    anchor: str
    text: str
    children: tuple[TocEntry, ...] = ()


@dataclass(frozen=True)
class RenderedChapter:
    html: str
    toc: tuple[Heading, ...]
    steps: tuple[RenderedStep, ...] = ()

    @property
    def toc_tree(self) -> tuple[TocEntry, ...]:
        return toc_tree(self.toc)


def toc_tree(headings: tuple[Heading, ...]) -> tuple[TocEntry, ...]:
    """Sections (h2) with their sub-sections (h3) nested and numbered 1, 1.1, 1.2, 2 ...

    A sub-section before the first section has no parent to number it by, so it
    stands among the sections and takes their numbering.
    """
    sections: list[tuple[Heading, list[Heading]]] = []
    for heading in headings:
        if heading.level > 2 and sections:
            sections[-1][1].append(heading)
        else:
            sections.append((heading, []))
    return tuple(
        TocEntry(
            str(i),
            section.anchor,
            section.text,
            tuple(TocEntry(f"{i}.{j}", sub.anchor, sub.text) for j, sub in enumerate(subs, start=1)),
        )
        for i, (section, subs) in enumerate(sections, start=1)
    )


@functools.lru_cache(maxsize=1024)
def highlight_code(code: str, language: str) -> str:
    """Server-side highlighting; unknown languages come out escaped and plain.

    Remembered: most of a render is Pygments, and the editor's preview renders the
    whole chapter on every pause in typing while its code blocks rarely change.
    """
    try:
        lexer = get_lexer_by_name(language or "text")
    except ClassNotFound:
        return html.escape(code)
    return highlight(code, lexer, _FORMATTER)


def _attr(value: object) -> str:
    return html.escape(str(value), quote=True)


def _line_attr(token: Token) -> str:
    """` data-line="N"` when source lines are being marked (the editor's preview), else nothing."""
    line = token.attrGet("data-line")
    return f' data-line="{_attr(line)}"' if line else ""


def _mark_source_lines(tokens: list[Token]) -> None:
    """Give every block that starts on a known line of the body its 1-based line number.

    The editor's preview finds the block under the cursor by it; blocks that the
    renderers above print themselves (cells, hints, exercises) copy it by hand.
    """
    for token in tokens:
        if token.map and token.block and token.nesting >= 0 and token.type != "html_block":
            token.attrSet("data-line", str(token.map[0] + 1))


def _fence(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    info = token.info.strip()
    if info == "hint":
        env.setdefault("hint_counter", 0)
        env["hint_counter"] += 1
        inner = _markdown().render(token.content, {k: env.get(k) for k in ("asset_base", "asset_sizes")})
        return f'<div class="hint" data-hint="{env["hint_counter"]}"{_line_attr(token)}>{inner}</div>\n'
    if info.split()[:1] == ["terminal"]:
        return _terminal_command(token, info, env)
    parsed = parse_cell_info(info)
    if parsed is None:
        language = info.split()[0] if info else ""
        return f'<pre class="code"{_line_attr(token)}><code class="highlight language-{_attr(language)}">{highlight_code(token.content, language)}</code></pre>\n'
    language, attrs = parsed
    role = attrs.get("role", "run")
    if role == "check":
        return ""  # checks run on the platform's side; the learner sees their verdict, not their code
    key = attrs.get("id", "")
    broker = attrs.get("broker", env.get("broker", ""))
    code = highlight_code(token.content, language)
    figure = (
        f'<figure class="cell cell-{_attr(role)}" data-cell="{_attr(key)}" data-broker="{_attr(broker)}" '
        f'data-role="{_attr(role)}" data-timeout="{_attr(attrs.get("timeout", 30))}"{_line_attr(token)}>'
        f'<pre class="cell-source"><code class="highlight language-python">{code}</code></pre></figure>\n'
    )
    if role == "solution":
        return f'<details class="solution"><summary>{_attr(env.get("solution_label", "Решение"))}</summary>{figure}</details>\n'
    if role == "setup":
        return f'<details class="setup"><summary>{_attr(env.get("setup_label", "Подготовка"))}</summary>{figure}</details>\n'
    return figure


def _terminal_command(token: Token, info: str, env: dict[str, Any]) -> str:
    """A ```terminal fence: commands for the sandbox's terminal (``broker=``, else the chapter's), to which the page
    adds its copy and run buttons; an exercise's solution in the terminal is folded like a solution cell."""
    attrs = parse_terminal_info(info) or {}
    broker, role = attrs.get("broker") or env.get("broker", ""), attrs.get("role", "")
    marks = f' data-role="{_attr(role)}" data-cell="{_attr(attrs.get("id", ""))}"' if role else ""
    block = (
        f'<div class="terminal-command" data-terminal-command data-broker="{_attr(broker)}"{marks}{_line_attr(token)}>'
        f'<pre class="code"><code class="highlight language-bash">{highlight_code(token.content, "bash")}</code></pre></div>\n'
    )
    if role == "solution":
        return f'<details class="solution"><summary>{_attr(env.get("solution_label", "Решение"))}</summary>{block}</details>\n'
    return block


def _image(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    if src and not re.match(r"^[a-z][a-z0-9+.-]*:|^/", src, re.I):
        path = src.removeprefix("./")
        token.attrSet("src", (env.get("asset_base") or "") + path)
        size = (env.get("asset_sizes") or {}).get(path)
        if size and not token.attrGet("width") and not token.attrGet("height"):
            # The box is reserved before the picture arrives (CSS keeps it fluid: height auto).
            token.attrSet("width", str(size[0]))
            token.attrSet("height", str(size[1]))
    token.attrSet("loading", "lazy")
    return self.renderToken(tokens, idx, options, env)


def _exercise_render(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    if token.nesting == 1:
        attrs = dict(a.partition("=")[::2] for a in token.info.split()[1:])
        env["hint_counter"] = 0
        key = _attr(attrs.get("id", ""))
        return f'<section class="exercise" id="exercise-{key}" data-exercise="{key}"{_line_attr(token)}>\n'
    return "</section>\n"


def _answer_render(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    """``::: answer``: a self-check question's answer, folded so the learner answers before reading it."""
    if tokens[idx].nesting == 1:
        label = _attr(env.get("answer_label", "Ответ"))
        return f'<details class="answer"{_line_attr(tokens[idx])}><summary>{label}</summary>\n'
    return "</details>\n"


def _predict_render(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    """``::: predict``: a question to answer before running the cell that follows it."""
    if tokens[idx].nesting == 1:
        label = _attr(env.get("predict_label", "Предскажите"))
        return f'<aside class="predict"{_line_attr(tokens[idx])}><p class="predict-label">{label}</p>\n'
    return "</aside>\n"


def _markdown() -> MarkdownIt:
    md = (
        MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})
        .enable(["table", "strikethrough"])
        .use(footnote_plugin)
        .use(tasklists_plugin)
        .use(admon_plugin)
        .use(anchors_plugin, min_level=2, max_level=3)
        .use(container_plugin, name="exercise", render=_exercise_render)
        .use(container_plugin, name="answer", render=_answer_render)
        .use(container_plugin, name="predict", render=_predict_render)
    )
    md.add_render_rule("fence", _fence)
    md.add_render_rule("image", _image)
    return md


def _plain_text(inline: Token) -> str:
    """A heading as read, without Markdown marks: "от `send()`" is "от send()"."""
    if not inline.children:
        return inline.content
    return "".join(child.content for child in inline.children if child.type in ("text", "code_inline", "html_inline")).strip()


def _toc(tokens: list[Token]) -> tuple[Heading, ...]:
    headings = []
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag in ("h2", "h3") and token.level == 0:
            anchor = str(token.attrGet("id") or "")
            headings.append(Heading(int(token.tag[1]), anchor, _plain_text(tokens[i + 1])))
    return tuple(headings)


def section_headings(body: str) -> list[tuple[int, str]]:
    """(level, anchor) of every h2/h3 of a chapter body in reading order, exercises' too; parsed, not rendered."""
    tokens = _markdown().parse(body, {})
    return [(int(t.tag[1]), str(t.attrGet("id") or "")) for t in tokens if t.type == "heading_open" and t.tag in ("h2", "h3")]


def markdown_render(
    body: str,
    *,
    broker: str = "",
    asset_base: str = "",
    asset_sizes: Mapping[str, tuple[int, int]] | None = None,
    source_lines: bool = False,
    steps: Sequence[str] = (),
    minutes: int = 0,
) -> RenderedChapter:
    """Render a chapter body (front matter already removed). Never raises on odd Markdown.

    With ``source_lines`` every block carries ``data-line``, its first line in ``body``
    (1-based), so the editor can show the block under the cursor; learners' pages go without.
    ``steps`` and ``minutes`` are the front matter's: each step is folded (lessons/steps.py).
    """
    md = _markdown()
    # The folds' labels are the page's chrome, in the UI language like its buttons.
    labels = {
        "solution_label": gettext("Решение"),
        "setup_label": gettext("Подготовка"),
        "answer_label": gettext("Ответ"),
        "predict_label": gettext("Предскажите, затем запустите"),
    }
    env: dict[str, Any] = {"broker": broker, "asset_base": asset_base, "asset_sizes": asset_sizes or {}, **labels}
    tokens = md.parse(body, env)
    if source_lines:
        _mark_source_lines(tokens)
    toc = _toc(tokens)
    step_labels = {"step": gettext("Шаг {n} из {total}"), "minutes": gettext("~{minutes} мин")}
    folded = steps_wrap(tokens, chapter_steps({"steps": steps, "estimated_minutes": minutes}, body), labels=step_labels)
    return RenderedChapter(html=sanitize(md.renderer.render(tokens, md.options, env)), toc=toc, steps=folded)


def markdown_render_cached(
    body: str,
    *,
    broker: str = "",
    asset_base: str = "",
    asset_sizes: Mapping[str, tuple[int, int]] | None = None,
    steps: Sequence[str] = (),
    minutes: int = 0,
) -> RenderedChapter:
    """The same, cached by the content itself: a changed chapter has a new key, so no stale page."""
    sizes = sorted((asset_sizes or {}).items())
    content = f"{RENDER_VERSION}\0{get_language()}\0{broker}\0{asset_base}\0{sizes}\0{list(steps)}\0{minutes}\0{body}"
    key = f"chapter-html:{hashlib.sha256(content.encode()).hexdigest()}"
    hit = cache.get(key)
    if hit is not None:
        toc = tuple(Heading(**h) for h in hit["toc"])
        return RenderedChapter(html=hit["html"], toc=toc, steps=tuple(RenderedStep(**s) for s in hit["steps"]))
    rendered = markdown_render(body, broker=broker, asset_base=asset_base, asset_sizes=asset_sizes, steps=steps, minutes=minutes)
    value = {"html": rendered.html, "toc": [h.__dict__ for h in rendered.toc], "steps": [s.__dict__ for s in rendered.steps]}
    cache.set(key, value, CACHE_SECONDS)
    return rendered
