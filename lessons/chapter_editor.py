"""The chapter editor's data: the file composed from its fields, its opening state, problems by editor line."""

from __future__ import annotations

import json
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .course_files import CHAPTER_KEYS, CHAPTER_OPTIONAL_KEYS, CourseFormatError, chapter_source_compose, split_front_matter
from .models import Chapter

MAX_SOURCE_CHARS = 2_000_000
TOO_LARGE = gettext_noop("Глава слишком большая.")
NEW_CHAPTER_BODY = "## Первый раздел\n\nТекст главы.\n"


def editor_problems(exc: CourseFormatError, *, data: dict[str, Any] | None = None) -> list[dict[str, object]]:
    """Problems as JSON; with the editor's ``data``, each also names its line in the editor (``body_line``)."""
    problems: list[dict[str, object]] = [{"file": p.file, "line": p.line, "message": p.message} for p in exc.problems]
    if data is not None:
        _editor_lines(problems, data)
    return problems


def _editor_lines(problems: list[dict[str, object]], data: dict[str, Any]) -> None:
    """Add ``body_line``: the problem's line in the editor's body, or None for the front matter.

    The file is the front matter plus the body without its leading blank lines, so a
    file line maps to the editor by the front matter's length and those blank lines.
    """
    try:
        _meta, _body, body_line = split_front_matter(editor_source(data), file="chapter")
    except (CourseFormatError, ValueError):
        return
    body = str(data.get("body", ""))
    blank_lines = len(body) - len(body.lstrip("\n"))
    for problem in problems:
        line = int(str(problem["line"]))
        problem["body_line"] = line - body_line + 1 + blank_lines if line >= body_line else None


def editor_data(body: bytes) -> dict[str, Any]:
    """The editor's JSON request body; ValueError (with a message to show) when too large or not an object."""
    if len(body) > MAX_SOURCE_CHARS * 4:
        raise ValueError(_(TOO_LARGE))
    data = json.loads(body or b"{}")
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")  # only a broken client sends anything else
    return data


def editor_source(data: dict[str, Any]) -> str:
    """The chapter file from the editor: front matter fields plus the Markdown body."""
    meta = {key: data.get("meta", {}).get(key) for key in (*CHAPTER_KEYS, *CHAPTER_OPTIONAL_KEYS)}
    for key in ("objectives", "steps"):
        items = meta.get(key) or []
        meta[key] = [str(o) for o in items if str(o).strip()] if isinstance(items, list) else []
    for key in ("order", "estimated_minutes"):
        try:
            meta[key] = int(meta[key])
        except (TypeError, ValueError):
            pass
    body = str(data.get("body", ""))
    if len(body) > MAX_SOURCE_CHARS:
        raise ValueError(_(TOO_LARGE))
    return chapter_source_compose(meta, body)


def editor_state(chapter: Chapter) -> dict[str, Any]:
    """What the editor opens with: the front matter fields, the body and the revision it edits."""
    meta, body, _ = split_front_matter(chapter.source, file=chapter.filename)
    fields = {key: meta.get(key) for key in (*CHAPTER_KEYS, *CHAPTER_OPTIONAL_KEYS)}
    return {"meta": fields, "body": body, "revision": chapter.revision}


def editor_state_new(*, order: int) -> dict[str, Any]:
    """What the editor opens with for a new chapter placed at ``order``."""
    return {
        "meta": {
            "title": "",
            "slug": "",
            "number": "",
            "order": order,
            "broker": "kafka",
            "estimated_minutes": 30,
            "objectives": [],
            "steps": [],
        },
        "body": NEW_CHAPTER_BODY,
        "revision": 0,
    }
