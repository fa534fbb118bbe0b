"""Chapter Markdown to safe HTML: the parser and plugins, highlighting, cells, then nh3.

The same function renders a learner's page and an instructor's live preview,
so what an instructor sees is what a learner gets.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from typing import Any

import nh3
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

from .course_files import parse_cell_info

#: Bump when the output changes shape, so cached pages are rebuilt.
RENDER_VERSION = "3"
CACHE_SECONDS = 24 * 3600

ALLOWED_TAGS = {
    "a",
    "abbr",
    "aside",
    "b",
    "blockquote",
    "br",
    "code",
    "dd",
    "del",
    "details",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "input",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "s",
    "section",
    "small",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "*": {"class", "title", "lang"},
    "a": {"href", "id"},
    "img": {"src", "alt", "width", "height", "loading"},
    "input": {"type", "checked", "disabled"},
    "h2": {"id"},
    "h3": {"id"},
    "h4": {"id"},
    "h5": {"id"},
    "h6": {"id"},
    "li": {"id"},
    "sup": {"id"},
    "section": {"id"},
    "figure": {"id"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
}
_FORMATTER = HtmlFormatter(nowrap=True)


@dataclass(frozen=True)
class Heading:
    level: int
    anchor: str
    text: str


@dataclass(frozen=True)
class RenderedChapter:
    html: str
    toc: tuple[Heading, ...]


def highlight_code(code: str, language: str) -> str:
    """Server-side highlighting; unknown languages come out escaped and plain."""
    try:
        lexer = get_lexer_by_name(language or "text")
    except ClassNotFound:
        return html.escape(code)
    return highlight(code, lexer, _FORMATTER)


def _attr(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fence(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    info = token.info.strip()
    if info == "hint":
        env.setdefault("hint_counter", 0)
        env["hint_counter"] += 1
        inner = _markdown().render(token.content, {"asset_base": env.get("asset_base", "")})
        return f'<div class="hint" data-hint="{env["hint_counter"]}">{inner}</div>\n'
    parsed = parse_cell_info(info)
    if parsed is None:
        language = info.split()[0] if info else ""
        return f'<pre class="code"><code class="highlight language-{_attr(language)}">{highlight_code(token.content, language)}</code></pre>\n'
    language, attrs = parsed
    role = attrs.get("role", "run")
    if role == "check":
        return ""  # checks run on the platform's side; the learner sees their verdict, not their code
    key = attrs.get("id", "")
    broker = attrs.get("broker", env.get("broker", ""))
    code = highlight_code(token.content, language)
    figure = (
        f'<figure class="cell cell-{_attr(role)}" data-cell="{_attr(key)}" data-broker="{_attr(broker)}" '
        f'data-role="{_attr(role)}" data-timeout="{_attr(attrs.get("timeout", 30))}">'
        f'<pre class="cell-source"><code class="highlight language-python">{code}</code></pre></figure>\n'
    )
    if role == "solution":
        return f'<details class="solution"><summary>{_attr(env.get("solution_label", "Решение"))}</summary>{figure}</details>\n'
    if role == "setup":
        return f'<details class="setup"><summary>{_attr(env.get("setup_label", "Подготовка"))}</summary>{figure}</details>\n'
    return figure


def _image(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    if src and not re.match(r"^[a-z][a-z0-9+.-]*:|^/", src, re.I):
        token.attrSet("src", env.get("asset_base", "") + src.removeprefix("./"))
    token.attrSet("loading", "lazy")
    return self.renderToken(tokens, idx, options, env)


def _exercise_render(self: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    if token.nesting == 1:
        attrs = dict(a.partition("=")[::2] for a in token.info.split()[1:])
        env["hint_counter"] = 0
        key = _attr(attrs.get("id", ""))
        return f'<section class="exercise" id="exercise-{key}" data-exercise="{key}">\n'
    return "</section>\n"


def _markdown() -> MarkdownIt:
    md = (
        MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})
        .enable(["table", "strikethrough"])
        .use(footnote_plugin)
        .use(tasklists_plugin)
        .use(admon_plugin)
        .use(anchors_plugin, min_level=2, max_level=3)
        .use(container_plugin, name="exercise", render=_exercise_render)
    )
    md.add_render_rule("fence", _fence)
    md.add_render_rule("image", _image)
    return md


def _toc(tokens: list[Token]) -> tuple[Heading, ...]:
    headings = []
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag in ("h2", "h3") and token.level == 0:
            anchor = str(token.attrGet("id") or "")
            headings.append(Heading(int(token.tag[1]), anchor, tokens[i + 1].content))
    return tuple(headings)


def section_headings(body: str) -> list[tuple[int, str]]:
    """(level, anchor) of every h2/h3 of a chapter body in reading order, exercises' too; parsed, not rendered."""
    tokens = _markdown().parse(body, {})
    return [(int(t.tag[1]), str(t.attrGet("id") or "")) for t in tokens if t.type == "heading_open" and t.tag in ("h2", "h3")]


def sanitize(raw_html: str) -> str:
    """Only the tags and attributes a chapter needs survive; scripts, handlers and javascript: URLs never do."""
    return nh3.clean(
        raw_html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        generic_attribute_prefixes={"data-"},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def markdown_render(body: str, *, broker: str = "", asset_base: str = "") -> RenderedChapter:
    """Render a chapter body (front matter already removed). Never raises on odd Markdown."""
    md = _markdown()
    # The folds' labels are the page's chrome, in the UI language like its buttons.
    labels = {"solution_label": gettext("Решение"), "setup_label": gettext("Подготовка")}
    env: dict[str, Any] = {"broker": broker, "asset_base": asset_base, **labels}
    tokens = md.parse(body, env)
    return RenderedChapter(html=sanitize(md.renderer.render(tokens, md.options, env)), toc=_toc(tokens))


def markdown_render_cached(body: str, *, broker: str = "", asset_base: str = "") -> RenderedChapter:
    """The same, cached by the content itself: a changed chapter has a new key, so no stale page."""
    digest = hashlib.sha256(f"{RENDER_VERSION}\0{get_language()}\0{broker}\0{asset_base}\0{body}".encode()).hexdigest()
    key = f"chapter-html:{digest}"
    hit = cache.get(key)
    if hit is not None:
        return RenderedChapter(html=hit["html"], toc=tuple(Heading(**h) for h in hit["toc"]))
    rendered = markdown_render(body, broker=broker, asset_base=asset_base)
    cache.set(key, {"html": rendered.html, "toc": [h.__dict__ for h in rendered.toc]}, CACHE_SECONDS)
    return rendered
