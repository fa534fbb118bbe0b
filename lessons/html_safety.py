"""What HTML a rendered chapter may keep: the tags and attributes a chapter needs, nothing that runs.

Chapters are written by instructors, and a chapter's raw HTML is allowed, so every page
passes through here after rendering; ``tests/security`` tries the attacks.
"""

from __future__ import annotations

import nh3

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
    "details": {"id", "open"},
    "input": {"type", "checked", "disabled"},
    **{heading: {"id"} for heading in ("h2", "h3", "h4", "h5", "h6")},
    "li": {"id"},
    "sup": {"id"},
    "section": {"id"},
    "figure": {"id"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
}


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
