"""Log-in and sign-up: throttled (django-ratelimit), sign-up modes, demo users only in development."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from courseplatform.accounts.models import Invitation

pytestmark = pytest.mark.django_db

PASSWORD = "queues-and-logs-42"


def signup(client, username: str, **extra: str):
    return client.post(reverse("signup"), {"username": username, "password1": PASSWORD, "password2": PASSWORD, **extra})


def test_password_guessing_is_refused_after_the_per_username_rate_even_with_the_right_password(client, learner, settings):
    settings.LOGIN_RATE_PER_USERNAME = "5/m"
    for attempt in range(5):
        response = client.post(reverse("login"), {"username": "learner", "password": f"guess-{attempt}"})
        assert response.status_code == 200
    # The sixth try is refused before the password is looked at: the right one does not get in either.
    response = client.post(reverse("login"), {"username": "learner", "password": "learner-pass-123"})
    assert response.status_code == 429
    assert "Слишком много попыток" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_from_one_address_is_throttled_across_usernames(client, settings):
    settings.LOGIN_RATE_PER_IP = "8/m"
    codes = [client.post(reverse("login"), {"username": f"user{n}", "password": "x"}).status_code for n in range(12)]
    assert codes[:8] == [200] * 8
    assert set(codes[8:]) == {429}


def test_signups_from_one_address_are_throttled(client, settings):
    settings.SIGNUP_RATE_PER_IP = "3/h"
    codes = []
    for n in range(5):
        codes.append(signup(client, f"bulk{n}").status_code)
        client.logout()
    assert codes == [302, 302, 302, 429, 429]
    assert User.objects.filter(username__startswith="bulk").count() == 3


def test_invite_only_signup_needs_a_valid_code_and_spends_it(client, settings):
    settings.SIGNUP_MODE = "invite"
    refused = signup(client, "nocode", invitation="made-up")
    assert refused.status_code == 200 and not User.objects.filter(username="nocode").exists()
    assert "приглашения нет" in refused.content.decode()
    invitation = Invitation.objects.create(uses_left=1)
    assert signup(client, "invited", invitation=invitation.code).status_code == 302
    client.logout()
    invitation.refresh_from_db()
    assert invitation.uses_left == 0
    # Spent: the same code does not let a second person in.
    assert signup(client, "second", invitation=invitation.code).status_code == 200
    assert not User.objects.filter(username="second").exists()


def test_domain_signup_accepts_only_allow_listed_addresses(client, settings):
    settings.SIGNUP_MODE = "domain"
    settings.SIGNUP_ALLOWED_DOMAINS = ["school.example"]
    refused = signup(client, "outsider", email="me@elsewhere.example")
    assert refused.status_code == 200 and not User.objects.filter(username="outsider").exists()
    assert "school.example" in refused.content.decode()
    assert signup(client, "pupil", email="pupil@School.Example").status_code == 302


def test_closed_signup_says_so(client, settings):
    settings.SIGNUP_MODE = "closed"
    response = signup(client, "late")
    assert response.status_code == 403
    assert "Регистрация закрыта" in response.content.decode()
    assert not User.objects.filter(username="late").exists()


def test_demo_users_are_refused_outside_development(settings):
    settings.DEMO_USERS_ALLOWED = False
    with pytest.raises(CommandError, match="development settings"):
        call_command("demo_users")
    assert not User.objects.filter(username__in=["learner", "teacher"]).exists()


def test_a_demo_password_does_not_log_in_outside_development(client, settings):
    settings.DEMO_USERS_ALLOWED = True
    call_command("demo_users")
    assert client.login(username="teacher", password="teacher-demo-pass")
    client.logout()
    # The same database served with production settings: the public password opens nothing.
    settings.DEMO_USERS_ALLOWED = False
    assert not client.login(username="teacher", password="teacher-demo-pass")
