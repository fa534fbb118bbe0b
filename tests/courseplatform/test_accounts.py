"""Sign up, log in, log out, change password; the instructor group holds authoring rights."""

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from courseplatform.accounts.roles import INSTRUCTOR_GROUP, user_is_instructor

pytestmark = pytest.mark.django_db


def test_signup_creates_a_learner_and_logs_them_in(client):
    response = client.post(
        reverse("signup"),
        {"username": "ada", "email": "ada@example.org", "password1": "queues-and-logs-42", "password2": "queues-and-logs-42"},
    )
    assert response.status_code == 302
    user = User.objects.get(username="ada")
    assert not user_is_instructor(user=user)
    assert client.get(reverse("lessons:home")).context["user"] == user


def test_signup_with_mismatched_passwords_shows_the_error(client):
    response = client.post(
        reverse("signup"), {"username": "bob", "password1": "queues-and-logs-42", "password2": "other-pass-43"}
    )
    assert response.status_code == 200
    assert not User.objects.filter(username="bob").exists()
    assert response.context["form"].errors["password2"]


def test_login_and_logout(client, learner):
    response = client.post(reverse("login"), {"username": "learner", "password": "learner-pass-123"})
    assert response.status_code == 302
    assert "_auth_user_id" in client.session
    client.post(reverse("logout"))
    assert "_auth_user_id" not in client.session


def test_wrong_password_is_refused(client, learner):
    response = client.post(reverse("login"), {"username": "learner", "password": "nope"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_password_change(client, learner):
    client.force_login(learner)
    response = client.post(
        reverse("password_change"),
        {"old_password": "learner-pass-123", "new_password1": "brand-new-pass-77", "new_password2": "brand-new-pass-77"},
    )
    assert response.status_code == 302
    learner.refresh_from_db()
    assert learner.check_password("brand-new-pass-77")


def test_instructor_group_holds_the_authoring_permission(instructor, learner):
    group = Group.objects.get(name=INSTRUCTOR_GROUP)
    assert group.permissions.filter(codename="change_chapter").exists()
    assert user_is_instructor(user=User.objects.get(pk=instructor.pk))
    assert not user_is_instructor(user=learner)


def test_pages_speak_russian_by_default_and_english_on_request(client):
    assert "Регистрация" in client.get(reverse("signup")).content.decode()
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    assert "Sign up" in client.get(reverse("signup")).content.decode()


def test_every_page_carries_a_strict_content_security_policy(client):
    policy = client.get(reverse("login")).headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("style-src")[0]
