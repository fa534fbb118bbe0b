"""A course and its translation are one course: the UI language opens its edition at the same section,
and what a learner has read, passed and drafted counts once, in both editions."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import iri_to_uri

from lessons import editions, selectors, services
from lessons.authoring import chapter_save
from lessons.course_io import course_import
from lessons.models import CellDraft, Chapter, ChapterRead

RU, EN = (Path(d) for d in settings.COURSE_DIRS)
KAFKA = "apache-kafka"


@pytest.fixture
def both(db):
    return course_import(directory=RU), course_import(directory=EN)


def english(client: Client) -> Client:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def chapter_url(course, chapter: str = KAFKA) -> str:
    return reverse("lessons:chapter", kwargs={"course": course.slug, "chapter": chapter})


def test_the_english_ui_opens_the_english_edition_of_a_russian_chapter_at_the_same_section(client, both):
    ru, en = both
    ru_sections = editions.chapter_sections(chapter=ru.chapters.get(slug=KAFKA))
    en_sections = editions.chapter_sections(chapter=en.chapters.get(slug=KAFKA))
    assert len(ru_sections) == len(en_sections) > 5
    assert ru_sections[4] != en_sections[4]  # anchors are the headings' words: matched by position
    response = english(client).get(chapter_url(ru), {"section": ru_sections[4]})
    assert response.status_code == 302
    assert response["Location"] == f"{chapter_url(en)}#{en_sections[4]}"
    # Without a section, the top of the same chapter; the English chapter itself is served as is.
    assert client.get(chapter_url(ru))["Location"] == chapter_url(en)
    page = client.get(chapter_url(en))
    assert page.status_code == 200 and page.context["chapter"].course == en


def test_the_russian_ui_opens_the_russian_edition_of_an_english_chapter_at_the_same_section(client, both):
    ru, en = both
    en_sections = editions.chapter_sections(chapter=en.chapters.get(slug=KAFKA))
    ru_sections = editions.chapter_sections(chapter=ru.chapters.get(slug=KAFKA))
    response = client.get(chapter_url(en), {"section": en_sections[-1]})
    assert response["Location"] == iri_to_uri(chapter_url(ru) + "#" + ru_sections[-1])
    # An anchor the chapter does not have lands at the top rather than nowhere.
    assert client.get(chapter_url(en), {"section": "no-such-heading"})["Location"] == chapter_url(ru)


def test_the_language_switch_posts_to_set_language_and_lands_on_the_other_edition(client, both):
    ru, en = both
    sections = editions.chapter_sections(chapter=ru.chapters.get(slug=KAFKA))
    page = client.get(chapter_url(ru)).content.decode()
    assert "data-language-switch" in page and 'data-testid="edition-en"' in page
    response = client.post(
        reverse("set_language"), {"language": "en", "next": f"{chapter_url(ru)}?section={sections[2]}"}, follow=True
    )
    assert response.redirect_chain[-1][0].startswith(chapter_url(en) + "#")
    assert response.context["chapter"].course == en
    assert 'data-testid="edition-ru"' in response.content.decode()


def test_home_and_course_pages_show_the_course_once_in_the_ui_language(client, both):
    ru, en = both
    assert client.get("/").context["course"] == ru
    assert client.get(reverse("lessons:course", args=[en.slug]))["Location"] == reverse("lessons:course", args=[ru.slug])
    english(client)
    assert client.get("/").context["course"] == en
    assert client.get(reverse("lessons:course", args=[ru.slug]))["Location"] == reverse("lessons:course", args=[en.slug])
    assert selectors.courses_for_language(language="en") == [en]


def test_a_chapter_read_in_russian_is_read_in_english_and_counts_once(client, learner, both):
    ru, en = both
    client.force_login(learner)
    client.post(reverse("lessons:chapter_read", args=[ru.slug, KAFKA]))
    english(client).post(reverse("lessons:chapter_read", args=[en.slug, KAFKA]))
    assert ChapterRead.objects.filter(user=learner).count() == 1
    page = client.get(chapter_url(en))
    assert page.context["is_read"]
    assert "Chapters read: 1 of 4" in client.get(reverse("lessons:course", args=[en.slug])).content.decode()
    assert selectors.course_outline(course=ru, user=learner).chapters_read == 1


def test_an_exercise_passed_in_russian_is_passed_in_english(learner, both):
    ru, en = both
    key = ru.chapters.get(slug=KAFKA).exercises.first().key
    check = selectors.exercise_check_runnable(course=ru.slug, chapter=KAFKA, exercise=key)
    services.exercise_attempt_record(user=learner, exercise=check.exercise, passed=True, reason="Проверка пройдена.")
    en_chapter = en.chapters.get(slug=KAFKA)
    assert selectors.chapter_exercises_for(chapter=en_chapter, user=learner)[key]["passed"]
    assert selectors.course_outline(course=en, user=learner).exercises_passed == 1
    # Passed once more in English: still one exercise passed, in either edition.
    check_en = selectors.exercise_check_runnable(course=en.slug, chapter=KAFKA, exercise=key)
    services.exercise_attempt_record(user=learner, exercise=check_en.exercise, passed=True, reason="Check passed.")
    assert selectors.course_outline(course=en, user=learner).exercises_passed == 1
    assert selectors.course_outline(course=ru, user=learner).exercises_passed == 1


def test_a_cell_draft_saved_in_english_is_offered_in_russian(client, learner, both):
    ru, en = both
    client.force_login(learner)
    cell = Chapter.objects.get(course=en, slug=KAFKA).cells.exclude(role="check").first()
    url = reverse("lessons:cell_draft", args=[en.slug, KAFKA, cell.key])
    assert client.post(url, json.dumps({"code": "print('mine')"}), content_type="application/json").json() == {"saved": True}
    cells = {c["key"]: c for c in client.get(chapter_url(ru)).context["cells"]}
    assert cells[cell.key]["code"] == "print('mine')"
    assert CellDraft.objects.filter(user=learner).count() == 1


def test_an_instructors_save_keeps_what_learners_passed(learner, instructor, both):
    ru, _en = both
    chapter = ru.chapters.get(slug=KAFKA)
    key = chapter.exercises.first().key
    check = selectors.exercise_check_runnable(course=ru.slug, chapter=KAFKA, exercise=key)
    services.exercise_attempt_record(user=learner, exercise=check.exercise, passed=True, reason="")
    chapter_save(
        chapter=chapter, source=chapter.source + "\nОдна строка ещё.\n", author=instructor, base_revision=chapter.revision
    )
    assert selectors.chapter_exercises_for(chapter=chapter, user=learner)[key]["passed"]


def test_course_lint_holds_a_translation_to_its_original(tmp_path, capsys):
    call_command("course_lint", str(RU), str(EN))
    assert "same as broker-academy, ok" in capsys.readouterr().out
    broken = tmp_path / "broker-academy-en"
    shutil.copytree(EN, broken)
    target = broken / "6-2-apache-kafka.md"
    text = target.read_text()
    first_cell = text.index("cell id=") + len("cell id=")
    text = text[:first_cell] + "renamed-" + text[first_cell:]
    text = text.replace("\n## ", "\n### ", 1)
    target.write_text(text)
    (broken / "6-4-testing-kafka.md").unlink()
    with pytest.raises(CommandError):
        call_command("course_lint", str(RU), str(broken))
    errors = capsys.readouterr().err
    assert "chapter 'testing-kafka' of the original is not translated" in errors
    assert "6-2-apache-kafka.md" in errors and "cells (id, role, broker, in order) differ" in errors
    assert "sections differ from the original's" in errors


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_what_learners_had_in_either_edition(learner):
    """Rows of the old shape (one edition's chapter, exercise) become one family's progress, duplicates merged."""
    executor = MigrationExecutor(connection)
    before = [("lessons", "0003_course_translations")]
    try:
        executor.migrate(before)
        old = executor.loader.project_state(before).apps
        Course, Chapter_, Exercise = (old.get_model("lessons", m) for m in ("Course", "Chapter", "Exercise"))
        Read, Attempt, Draft = (old.get_model("lessons", m) for m in ("ChapterRead", "ExerciseAttempt", "CellDraft"))
        ru = Course.objects.create(slug="c", title="К", language="ru", source="")
        en = Course.objects.create(slug="c-en", title="C", language="en", translation_of="c", source="")
        common = {"number": "1", "order": 1, "broker": "nats", "estimated_minutes": 1, "source": "", "filename": "a.md"}
        ch_ru = Chapter_.objects.create(course=ru, slug="a", title="А", **common)
        ch_en = Chapter_.objects.create(course=en, slug="a", title="A", **common)
        ex_en = Exercise.objects.create(chapter=ch_en, key="task", title="T", position=0)
        Read.objects.create(user_id=learner.pk, chapter=ch_ru)
        Read.objects.create(user_id=learner.pk, chapter=ch_en)
        Attempt.objects.create(user_id=learner.pk, exercise=ex_en, passed=True, reason="ok")
        Draft.objects.create(user_id=learner.pk, chapter=ch_ru, cell_key="x", code="old")
        Draft.objects.create(user_id=learner.pk, chapter=ch_en, cell_key="x", code="newest")
        Draft.objects.filter(code="old").update(updated_at=timezone.now() - timedelta(days=1))

        executor = MigrationExecutor(connection)
        executor.migrate([("lessons", "0004_progress_by_course_family")])
        new = executor.loader.project_state([("lessons", "0004_progress_by_course_family")]).apps
        reads = new.get_model("lessons", "ChapterRead").objects.values_list("course_family", "chapter_slug")
        attempts = new.get_model("lessons", "ExerciseAttempt").objects.values_list(
            "course_family", "chapter_slug", "exercise_key", "passed"
        )
        drafts = new.get_model("lessons", "CellDraft").objects.values_list("course_family", "chapter_slug", "cell_key", "code")
        assert list(reads) == [("c", "a")]
        assert list(attempts) == [("c", "a", "task", True)]
        assert list(drafts) == [("c", "a", "x", "newest")]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
