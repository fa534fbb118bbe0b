"""Authoring: permissions on every URL, revisions, conflicts, restore, order, preview, archives, class view."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse

from lessons.archives import course_archive, course_archive_import
from lessons.course_io import course_import
from lessons.models import Chapter, ChapterRead, ExerciseAttempt

pytestmark = pytest.mark.django_db

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"

META = {
    "title": "Новая",
    "slug": "fresh",
    "number": "1.9",
    "order": 9,
    "broker": "nats",
    "estimated_minutes": 10,
    "objectives": ["Понять"],
}
BODY = (
    "## Раздел\n\n```python cell id=hello\nprint('hi')\n```\n\n"
    "::: exercise id=task\n### Задание\n\nЦель.\n\n```python cell id=task-starter role=starter\npass\n```\n\n"
    "```hint\nПодсказка\n```\n\n```python cell id=task-solution role=solution\npass\n```\n\n"
    "```python cell id=task-check role=check\nassert False, 'нет'\n```\n:::\n"
)

URLS = [
    ("get", "authoring:index", {}),
    ("post", "authoring:course_create", {}),
    ("post", "authoring:course_import", {}),
    ("post", "authoring:preview", {"course": "mini"}),
    ("get", "authoring:verify_result", {"job": "x"}),
    ("get", "authoring:course", {"course": "mini"}),
    ("post", "authoring:course_publish", {"course": "mini"}),
    ("post", "authoring:course_reorder", {"course": "mini"}),
    ("get", "authoring:course_export", {"course": "mini"}),
    ("get", "authoring:class", {"course": "mini"}),
    ("post", "authoring:class_sandbox", {"course": "mini", "user_id": 1, "broker": "nats", "action": "stop"}),
    ("post", "authoring:class_booking_create", {"course": "mini"}),
    ("post", "authoring:class_booking_cancel", {"course": "mini", "booking": 1}),
    ("get", "authoring:chapter_new", {"course": "mini"}),
    ("post", "authoring:chapter_create", {"course": "mini"}),
    ("get", "authoring:chapter_edit", {"course": "mini", "chapter": "first"}),
    ("post", "authoring:chapter_save", {"course": "mini", "chapter": "first"}),
    ("post", "authoring:chapter_publish", {"course": "mini", "chapter": "first"}),
    ("get", "authoring:chapter_history", {"course": "mini", "chapter": "first"}),
    ("post", "authoring:chapter_restore", {"course": "mini", "chapter": "first", "number": 1}),
    ("post", "authoring:exercise_verify", {"course": "mini", "chapter": "first", "exercise": "first-task"}),
]


@pytest.fixture
def mini(instructor):
    """The small course, taught by the ``instructor`` fixture (authoring is for a course's own instructors)."""
    course = course_import(directory=MINI)
    course.instructors.add(instructor)
    return course


@pytest.mark.parametrize(("method", "name", "kwargs"), URLS, ids=[u[1] for u in URLS])
def test_a_learner_gets_403_on_every_authoring_url(client, learner, mini, method, name, kwargs):
    client.force_login(learner)
    response = getattr(client, method)(reverse(name, kwargs=kwargs))
    assert response.status_code == 403


@pytest.mark.parametrize(("method", "name", "kwargs"), URLS, ids=[u[1] for u in URLS])
def test_an_anonymous_visitor_is_sent_to_log_in(client, mini, method, name, kwargs):
    response = getattr(client, method)(reverse(name, kwargs=kwargs))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_every_authoring_url_is_in_the_permission_list():
    from lessons.authoring_urls import urlpatterns

    assert {f"authoring:{p.name}" for p in urlpatterns} == {name for _, name, _ in URLS}


def save(client, chapter_slug, body, revision, meta=None):
    return client.post(
        reverse("authoring:chapter_save", kwargs={"course": "mini", "chapter": chapter_slug}),
        json.dumps({"meta": meta or META, "body": body, "revision": revision}),
        content_type="application/json",
    )


def test_an_instructor_creates_a_chapter_then_each_save_is_a_revision(client, instructor, mini):
    client.force_login(instructor)
    created = client.post(
        reverse("authoring:chapter_create", kwargs={"course": "mini"}),
        json.dumps({"meta": META, "body": BODY}),
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    chapter = Chapter.objects.get(slug="fresh")
    assert (chapter.revision, chapter.published, chapter.cells.count(), chapter.exercises.count()) == (1, False, 4, 1)
    response = save(client, "fresh", BODY + "\nЕщё абзац.\n", 1)
    assert response.json()["revision"] == 2
    assert list(chapter.revisions.values_list("number", flat=True)) == [2, 1]


def test_an_invalid_save_stores_nothing_and_names_the_line(client, instructor, mini):
    client.force_login(instructor)
    chapter = Chapter.objects.get(slug="first")
    response = save(
        client, "first", "```python cell id=x colour=red\npass\n```\n", chapter.revision, meta={**META, "slug": "first"}
    )
    assert response.status_code == 400
    (problem,) = response.json()["problems"]
    assert "неизвестные атрибуты ячейки: colour" in problem["message"]  # in the page's language (Russian here)
    assert problem["line"] > 1 and problem["body_line"] == 1  # the file's line, and the editor's
    chapter.refresh_from_db()
    assert chapter.source == (MINI / "1-first.md").read_text()


def test_a_second_instructor_saving_an_old_revision_is_told_and_shown_the_difference(client, instructor, mini):
    client.force_login(instructor)
    base = Chapter.objects.get(slug="first").revision
    first = save(client, "first", "## Версия Анны\n", base, meta={**META, "slug": "first"})
    assert first.status_code == 200
    second = save(client, "first", "## Версия Бориса\n", base, meta={**META, "slug": "first"})
    assert second.status_code == 409
    answer = second.json()
    assert answer["conflict"] is True and answer["revision"] == base + 1
    assert "-## Версия Бориса" in answer["diff"] and "+## Версия Анны" in answer["diff"]
    assert "Версия Анны" in Chapter.objects.get(slug="first").source


def test_history_shows_a_diff_and_restore_makes_an_old_revision_current(client, instructor, mini):
    client.force_login(instructor)
    chapter = Chapter.objects.get(slug="first")
    original = chapter.source
    save(client, "first", "## Переписано\n", chapter.revision, meta={**META, "slug": "first"})
    page = client.get(reverse("authoring:chapter_history", kwargs={"course": "mini", "chapter": "first"}) + "?a=1&b=2")
    assert "+## Переписано" in page.content.decode()
    client.post(reverse("authoring:chapter_restore", kwargs={"course": "mini", "chapter": "first", "number": 1}))
    chapter.refresh_from_db()
    assert chapter.source == original and chapter.revision == 3
    assert chapter.cells.count() == 4  # cells and exercises come back with the text


def test_reordering_rewrites_each_chapters_order_line(client, instructor, mini):
    client.force_login(instructor)
    client.post(reverse("authoring:course_reorder", kwargs={"course": "mini"}), {"move": "second:up"})
    chapters = {c.slug: c for c in Chapter.objects.all()}
    assert (chapters["second"].order, chapters["first"].order) == (1, 2)
    assert "\norder: 1\n" in chapters["second"].source


def test_the_preview_uses_the_real_renderer_and_sanitizer(client, instructor, mini):
    client.force_login(instructor)
    response = client.post(
        reverse("authoring:preview", kwargs={"course": "mini"}),
        json.dumps(
            {
                "meta": META,
                "body": "## Х\n\n<script>alert(1)</script><img src=x onerror=alert(2)>\n\n```python cell id=a\nprint(1)\n```\n",
            }
        ),
        content_type="application/json",
    )
    answer = response.json()
    assert "<script" not in answer["html"] and "onerror" not in answer["html"]
    assert 'data-cell="a"' in answer["html"]
    assert answer["toc"][0]["text"] == "Х" and answer["problems"] == []


def test_the_editor_page_comes_with_the_chapter_filled_in(client, instructor, mini):
    client.force_login(instructor)
    chapter = Chapter.objects.get(slug="first")
    chapter.source = chapter.source.replace("  - Отправить сообщение\n", "  - Отправить сообщение\n  - <b>Второе</b>\n")
    chapter.source = chapter.source.replace("---\n\n## Публикация", "---\n\n\n## Публикация")
    chapter.save()
    html = client.get(reverse("authoring:chapter_edit", kwargs={"course": "mini", "chapter": "first"})).content.decode()
    assert 'data-meta="title" value="Первая глава"' in html
    assert '<option value="nats" selected>NATS</option>' in html
    assert 'data-meta="objectives">Отправить сообщение\n&lt;b&gt;Второе&lt;/b&gt;</textarea>' in html
    # HTML drops one newline after <textarea>: the body's own leading blank lines stay.
    assert 'aria-describedby="format-help">\n\n\n## Публикация' in html


def test_the_preview_marks_blocks_and_problems_with_their_line_in_the_editor(client, instructor, mini):
    client.force_login(instructor)
    # Two blank lines first: the saved file drops them, the editor keeps them.
    body = "\n\n## Раздел\n\nАбзац.\n\n```python cell id=a colour=red\npass\n```\n"
    answer = client.post(
        reverse("authoring:preview", kwargs={"course": "mini"}),
        json.dumps({"meta": META, "body": body}),
        content_type="application/json",
    ).json()
    assert '<h2 id="раздел" data-line="3">' in answer["html"]
    assert '<p data-line="5">' in answer["html"]
    assert 'data-cell="a"' in answer["html"] and 'data-line="7"' in answer["html"]
    (problem,) = answer["problems"]
    assert problem["body_line"] == 7 and problem["line"] > 7


def test_history_opens_on_the_last_two_revisions_with_lines_marked_by_kind(client, instructor, mini):
    client.force_login(instructor)
    chapter = Chapter.objects.get(slug="first")
    save(client, "first", "## Переписано\n", chapter.revision, meta={**META, "slug": "first"})
    page = client.get(reverse("authoring:chapter_history", kwargs={"course": "mini", "chapter": "first"}))
    html = page.content.decode()
    assert (page.context["a"], page.context["b"]) == ("1", "2")
    assert '<span class="diff-line diff-add">+## Переписано</span>' in html
    assert '<span class="diff-line diff-del">-## Публикация</span>' in html
    assert '<span class="diff-line diff-hunk">@@' in html


def test_publishing_makes_a_chapter_visible_to_learners(client, instructor, learner, mini):
    client.force_login(instructor)
    client.post(
        reverse("authoring:chapter_create", kwargs={"course": "mini"}),
        json.dumps({"meta": META, "body": BODY}),
        content_type="application/json",
    )
    client.force_login(learner)
    assert client.get("/courses/mini/fresh/").status_code == 404
    client.force_login(instructor)
    client.post(reverse("authoring:chapter_publish", kwargs={"course": "mini", "chapter": "fresh"}), {"published": "1"})
    client.force_login(learner)
    assert client.get("/courses/mini/fresh/").status_code == 200


def test_archive_export_and_import_round_trip_byte_for_byte(client, instructor, mini, tmp_path):
    client.force_login(instructor)
    data = client.get(reverse("authoring:course_export", kwargs={"course": "mini"})).content
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert sorted(names) == sorted(p.relative_to(MINI).as_posix() for p in MINI.rglob("*") if p.is_file())
    for name in names:
        assert zipfile.ZipFile(io.BytesIO(data)).read(name) == (MINI / name).read_bytes()
    mini.delete()
    course = course_archive_import(data=data)
    assert course_archive(course=course) and sorted(
        zipfile.ZipFile(io.BytesIO(course_archive(course=course))).namelist()
    ) == sorted(names)


def test_archives_with_unsafe_paths_or_garbage_are_refused(client, instructor, mini):
    client.force_login(instructor)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../etc/evil.md", "x")
        archive.writestr("course.md", "---\ntitle: T\nslug: t\nlanguage: ru\n---\n")
    for payload in (buffer.getvalue(), b"not a zip at all"):
        response = client.post(reverse("authoring:course_import"), {"archive": io.BytesIO(payload)})
        assert response.status_code == 400


def test_importing_from_a_folder_outside_the_allowed_roots_is_refused(client, instructor, settings):
    client.force_login(instructor)
    settings.COURSE_IMPORT_ROOTS = [str(MINI.parent.parent / "nowhere")]
    assert client.post(reverse("authoring:course_import"), {"folder": str(MINI)}).status_code == 400
    settings.COURSE_IMPORT_ROOTS = [str(MINI.parent)]
    assert client.post(reverse("authoring:course_import"), {"folder": str(MINI)}).status_code == 302


def test_the_class_view_shows_progress_and_the_most_failed_exercises(client, instructor, learner, mini):
    mini.instructors.add(instructor)  # the class is its own instructors'
    chapter = Chapter.objects.get(slug="first")
    ChapterRead.objects.create(user=learner, course_family="mini", chapter_slug=chapter.slug)
    exercise = chapter.exercises.get()
    for reason in ("нет темы", "нет темы", "мало сообщений"):
        ExerciseAttempt.objects.create(
            user=learner, course_family="mini", chapter_slug=chapter.slug, exercise_key=exercise.key, passed=False, reason=reason
        )
    client.force_login(instructor)
    page = client.get(reverse("authoring:class", kwargs={"course": "mini"})).content.decode()
    assert "learner" in page and "1 / 3" in page
    assert "нет темы" in page and "×2" in page
