"""Authoring's doors: no redirect off the site after publishing; an instructor's powers over learners end at their courses."""

from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from courseplatform.accounts.roles import INSTRUCTOR_GROUP
from lessons.course_io import course_import
from lessons.models import ChapterRead
from sandboxes.models import Sandbox, State

pytestmark = pytest.mark.django_db

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"


@pytest.mark.parametrize(
    "target", ["https://evil.example/phish", "//evil.example/x", "http:///evil.example", "javascript:alert(1)"]
)
def test_publish_never_redirects_off_the_site(client, instructor, target):
    course_import(directory=MINI).instructors.add(instructor)
    client.force_login(instructor)
    url = reverse("authoring:chapter_publish", kwargs={"course": "mini", "chapter": "first"})
    response = client.post(url, {"published": "1", "next": target})
    assert response.status_code == 302
    assert response["Location"] == reverse("authoring:course", kwargs={"course": "mini"})


def test_publish_returns_to_a_page_of_the_site(client, instructor):
    course_import(directory=MINI).instructors.add(instructor)
    client.force_login(instructor)
    url = reverse("authoring:chapter_publish", kwargs={"course": "mini", "chapter": "first"})
    response = client.post(url, {"published": "1", "next": "/author/mini/"})
    assert response["Location"] == "/author/mini/"


def _instructor(username: str) -> User:
    user = User.objects.create_user(username, password="teacher-pass-123")
    user.groups.add(Group.objects.get(name=INSTRUCTOR_GROUP))
    return user


def test_an_instructor_cannot_touch_the_sandbox_of_a_learner_of_a_course_they_do_not_teach(client, learner):
    mini = course_import(directory=MINI)
    teacher_a, teacher_b = _instructor("teacher-a"), _instructor("teacher-b")
    mini.instructors.add(teacher_a)
    ChapterRead.objects.create(user=learner, course_family="mini", chapter_slug="first")
    sandbox = Sandbox.objects.create(user=learner, broker="nats", state=State.READY)
    reset = reverse(
        "authoring:class_sandbox", kwargs={"course": "mini", "user_id": learner.pk, "broker": "nats", "action": "reset"}
    )

    client.force_login(teacher_b)
    assert client.get(reverse("authoring:class", kwargs={"course": "mini"})).status_code == 403
    for action in ("reset", "stop"):
        response = client.post(reset.replace("/reset", "/" + action))
        assert response.status_code == 403, f"{action}: {response.status_code}"
    sandbox.refresh_from_db()
    assert sandbox.state == State.READY, "another instructor's learner's sandbox was touched"

    client.force_login(teacher_a)
    page = client.get(reverse("authoring:class", kwargs={"course": "mini"}))
    assert page.status_code == 200 and "learner" in page.content.decode()
    assert client.post(reset).status_code == 302
    sandbox.refresh_from_db()
    assert sandbox.state == State.STOPPING


def test_an_instructor_reaches_only_learners_of_the_course_named(client, learner):
    """Through a course they do teach, an instructor still cannot name someone outside its class."""
    mini = course_import(directory=MINI)
    teacher = _instructor("teacher-a")
    mini.instructors.add(teacher)
    sandbox = Sandbox.objects.create(user=learner, broker="nats", state=State.READY)  # learner never opened mini
    client.force_login(teacher)
    url = reverse("authoring:class_sandbox", kwargs={"course": "mini", "user_id": learner.pk, "broker": "nats", "action": "stop"})
    assert client.post(url).status_code == 404
    sandbox.refresh_from_db()
    assert sandbox.state == State.READY


def test_who_creates_a_course_teaches_it_and_nobody_else_does(client):
    author, other = _instructor("teacher-a"), _instructor("teacher-b")
    client.force_login(author)
    created = client.post(reverse("authoring:course_create"), {"title": "Своё", "slug": "own", "description": "x"})
    assert created.status_code == 302, created.content.decode()[:500]
    assert client.get(reverse("authoring:class", kwargs={"course": "own"})).status_code == 200
    client.force_login(other)
    assert client.get(reverse("authoring:class", kwargs={"course": "own"})).status_code == 403
