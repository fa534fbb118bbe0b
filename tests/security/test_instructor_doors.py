"""Authoring's doors: no redirect off the site after publishing."""

from pathlib import Path

import pytest
from django.urls import reverse

from lessons.course_io import course_import

pytestmark = pytest.mark.django_db

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"


@pytest.mark.parametrize(
    "target", ["https://evil.example/phish", "//evil.example/x", "http:///evil.example", "javascript:alert(1)"]
)
def test_publish_never_redirects_off_the_site(client, instructor, target):
    course_import(directory=MINI)
    client.force_login(instructor)
    url = reverse("authoring:chapter_publish", kwargs={"course": "mini", "chapter": "first"})
    response = client.post(url, {"published": "1", "next": target})
    assert response.status_code == 302
    assert response["Location"] == reverse("authoring:course", kwargs={"course": "mini"})


def test_publish_returns_to_a_page_of_the_site(client, instructor):
    course_import(directory=MINI)
    client.force_login(instructor)
    url = reverse("authoring:chapter_publish", kwargs={"course": "mini", "chapter": "first"})
    response = client.post(url, {"published": "1", "next": "/author/mini/"})
    assert response["Location"] == "/author/mini/"
