"""Where a learner is in a course: reported by the chapter page, shown on the home and course pages."""

from pathlib import Path

import pytest
from django.urls import reverse

from lessons.course_io import course_import
from lessons.models import ReadingPosition

pytestmark = pytest.mark.django_db

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"
CONTENT = Path(__file__).resolve().parents[2] / "lessons" / "content"


def position_url(chapter: str) -> str:
    return reverse("lessons:chapter_position", kwargs={"course": "mini", "chapter": chapter})


def test_the_last_reported_section_leads_back_from_the_course_page(client, learner):
    course_import(directory=MINI)
    client.force_login(learner)
    assert client.post(position_url("first"), {"anchor": "публикация"}).status_code == 204
    assert client.post(position_url("second"), {"anchor": ""}).status_code == 204
    assert ReadingPosition.objects.get(user=learner).chapter_slug == "second"  # one place per course
    client.post(position_url("first"), {"anchor": "публикация"})
    page = client.get(reverse("lessons:course", kwargs={"course": "mini"}))
    resume = page.context["resume"]
    assert (resume.chapter.slug, resume.anchor, resume.section) == ("first", "публикация", "Публикация")
    assert resume.url == "/courses/mini/first/#публикация"
    assert 'data-testid="resume-link"' in page.content.decode()


def test_an_anchor_the_chapter_does_not_have_means_its_top(client, learner):
    course_import(directory=MINI)
    client.force_login(learner)
    client.post(position_url("first"), {"anchor": "nowhere"})
    assert ReadingPosition.objects.get(user=learner).anchor == ""


def test_visitors_are_not_tracked(client):
    course_import(directory=MINI)
    assert client.post(position_url("first"), {"anchor": "публикация"}).status_code == 302  # to log in
    assert client.get(reverse("lessons:course", kwargs={"course": "mini"})).context["resume"] is None


def test_a_place_read_in_one_edition_is_the_same_place_in_the_other(client, learner, settings):
    course_import(directory=CONTENT / "broker-academy")
    course_import(directory=CONTENT / "broker-academy-en")
    client.force_login(learner)
    url = reverse("lessons:chapter_position", kwargs={"course": "broker-academy", "chapter": "kafka-producer-consumer"})
    client.post(url, {"anchor": "смещения-и-коммиты"})
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    resume = client.get(reverse("lessons:course", kwargs={"course": "broker-academy-en"})).context["resume"]
    assert (resume.chapter.course.slug, resume.section) == ("broker-academy-en", "Offsets and commits")
    assert resume.url == "/courses/broker-academy-en/kafka-producer-consumer/#offsets-and-commits"
