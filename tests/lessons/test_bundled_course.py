"""The course we ship: it lints, loads, and every chapter page renders with its cells."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from lessons.course_io import course_folder_read, course_import
from lessons.models import ChapterRead

COURSE = Path(settings.COURSE_DIRS[0])
COURSES = [Path(d) for d in settings.COURSE_DIRS]


@pytest.mark.parametrize("directory", COURSES, ids=[d.name for d in COURSES])
def test_the_bundled_course_lints_clean(directory):
    folder = course_folder_read(directory=directory)
    assert len(folder.chapters) == 4
    for filename, (_source, parsed) in folder.chapters.items():
        assert len(parsed.exercises) >= 2, f"{filename} needs at least two exercises"
        assert sum(c.role == "run" for c in parsed.cells) >= 3, f"{filename} needs runnable cells"


@pytest.mark.django_db
def test_every_chapter_page_renders_and_marking_read_shows_on_the_course_page(client, learner):
    course = course_import(directory=COURSE)
    client.force_login(learner)
    chapters = list(course.chapters.order_by("order"))
    assert [c.number for c in chapters] == ["6.1", "6.2", "6.3", "6.4"]
    for chapter in chapters:
        response = client.get(reverse("lessons:chapter", args=[course.slug, chapter.slug]))
        assert response.status_code == 200
        body = response.content.decode()
        assert 'class="cell' in body and 'data-exercise="' in body
        assert "role=check" not in body
    client.post(reverse("lessons:chapter_read", args=[course.slug, chapters[0].slug]))
    assert ChapterRead.objects.filter(user=learner, course_family=course.slug, chapter_slug=chapters[0].slug).exists()
    page = client.get(reverse("lessons:course", args=[course.slug])).content.decode()
    assert "Прочитано глав: 1 из 4" in page


@pytest.mark.django_db
def test_course_pictures_are_served_as_inert_images(client):
    course = course_import(directory=COURSE)
    asset = course.assets.first()
    response = client.get(reverse("lessons:asset", args=[course.slug, asset.path]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert "sandbox" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_the_english_edition_is_offered_beside_the_russian_one(client):
    ru, en = (course_import(directory=d) for d in COURSES)
    assert (ru.language, en.language, en.translation_of) == ("ru", "en", ru.slug)
    # Russian UI: the Russian course is the home page, with a switch to English that comes back to this chapter.
    assert client.get("/").context["course"] == ru
    page = client.get(reverse("lessons:chapter", args=[ru.slug, "apache-kafka"])).content.decode()
    assert 'data-testid="edition-en"' in page
    assert f'name="next" value="/courses/{ru.slug}/apache-kafka/"' in page
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert client.get("/").context["course"] == en


@pytest.mark.django_db
def test_every_picture_of_a_chapter_keeps_its_place_before_it_loads(client, learner):
    """Each <img> of the bundled chapters carries its own file's size: the page reserves the box, so a
    picture loading late cannot push the text (or the chapter's end, after a jump to it) away."""
    course = course_import(directory=COURSE)
    client.force_login(learner)
    pictures = 0
    for chapter in course.chapters.all():
        page = client.get(reverse("lessons:chapter", args=[course.slug, chapter.slug])).content.decode()
        for tag in re.findall(r"<img\b[^>]*>", page):
            src = re.search(r'src="[^"]*/assets/([^"]+)"', tag).group(1)
            stored = course.assets.get(path=src)
            root = re.search(rb"<svg\b[^>]*>", bytes(stored.content)).group(0).decode()
            declared = re.search(r'width="(\d+)" height="(\d+)"', root).groups()
            assert re.search(r'\bwidth="(\d+)"', tag).group(1) == declared[0], tag
            assert re.search(r'\bheight="(\d+)"', tag).group(1) == declared[1], tag
            pictures += 1
    assert pictures >= 10
