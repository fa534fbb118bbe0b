"""The broker registry is the one list: a kind registered there is accepted and shown everywhere.

A test-only kind is put into ``sandboxes.brokers.BROKERS`` at run time, nothing in
``lessons/`` knows it, and yet course files, the models and the pages take it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from lessons.chapter_parsing import parse_chapter
from lessons.course_files import CourseFormatError
from lessons.course_io import course_import
from lessons.models import Cell, Chapter
from sandboxes.brokers import BROKERS, Broker

NAME = "pigeon"
LABEL = "Голубиная почта"
SHORT = "Голубь"

COURSE = """---
title: Курс о голубях
slug: pigeons
language: ru
---
Курс для теста реестра брокеров.
"""
CHAPTER = f"""---
title: Голуби
slug: pigeons-1
number: "1.1"
order: 1
broker: {NAME}
estimated_minutes: 5
objectives:
  - Отправить голубя
---

## Отправка

```python cell id=send broker={NAME}
print("курлык")
```
"""


@pytest.fixture
def pigeon(monkeypatch):
    """A broker kind that exists only in this test: one registry line, as a new broker would add."""
    monkeypatch.setitem(BROKERS, NAME, Broker("tests.sandboxes.test_broker_list.Pigeon", LABEL, SHORT))
    return NAME


@pytest.fixture
def pigeon_course(pigeon, tmp_path: Path):
    folder = tmp_path / "pigeons"
    folder.mkdir()
    (folder / "course.md").write_text(COURSE)
    (folder / "1-pigeons.md").write_text(CHAPTER)
    return course_import(directory=folder)


def broker_kinds_of(html: str) -> list[dict[str, str]]:
    found = re.search(r'<script id="broker-kinds" type="application/json">(.*?)</script>', html, re.S)
    assert found, "the page carries no broker-kinds list"
    return json.loads(found.group(1))


def test_course_files_accept_a_registered_broker_and_refuse_an_unknown_one(pigeon):
    parsed = parse_chapter(CHAPTER, file="1-pigeons.md")
    assert parsed.meta["broker"] == NAME and parsed.cells[0].broker == NAME
    with pytest.raises(CourseFormatError) as info:
        parse_chapter(CHAPTER.replace(NAME, "crow"), file="1-pigeons.md")
    assert NAME in str(info.value.problems[0])  # the message lists the registry's kinds


@pytest.mark.django_db
def test_models_validate_the_broker_against_the_registry(pigeon_course):
    chapter = Chapter.objects.get(course=pigeon_course, slug="pigeons-1")
    cell = Cell.objects.get(chapter=chapter, key="send")
    assert (chapter.broker, cell.broker) == (NAME, NAME)
    chapter.full_clean()
    cell.full_clean()
    assert chapter.broker_label == LABEL
    chapter.broker = "crow"
    with pytest.raises(ValidationError, match="crow"):
        chapter.full_clean()


@pytest.mark.django_db
def test_pages_list_the_registered_broker_with_its_labels(pigeon_course, client, instructor):
    client.force_login(instructor)
    page = client.get(reverse("lessons:chapter", kwargs={"course": "pigeons", "chapter": "pigeons-1"}))
    assert page.status_code == 200
    html = page.content.decode()
    kinds = broker_kinds_of(html)
    assert [k["name"] for k in kinds] == list(BROKERS)
    assert {"name": NAME, "label": LABEL, "short": SHORT} in kinds
    assert {"name": "kafka", "label": "Apache Kafka", "short": "Kafka"} in kinds
    assert f'<span class="badge broker-{NAME}">{LABEL}</span>' in html

    pigeon_course.instructors.add(instructor)  # its editor is for its own instructors
    editor = client.get(reverse("authoring:chapter_edit", kwargs={"course": "pigeons", "chapter": "pigeons-1"}))
    assert editor.status_code == 200
    assert f'<option value="{NAME}" selected>{LABEL}</option>' in editor.content.decode()
