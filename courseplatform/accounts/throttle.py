"""Limits on the doors anyone can knock on: log-in and sign-up attempts, by address and by account name.

Counted by django-ratelimit in the shared cache (Redis), so every web process sees the same
counts. Rates are read from settings on each request (LOGIN_RATE_PER_IP, LOGIN_RATE_PER_USERNAME,
SIGNUP_RATE_PER_IP) so a deployment, or a test, can change them.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django_ratelimit.decorators import ratelimit

TOO_MANY = _("Слишком много попыток. Подождите немного и попробуйте снова.")


def rate_from(setting: str) -> Callable[[str, HttpRequest], str]:
    return lambda group, request: getattr(settings, setting)


login_by_ip = ratelimit(group="login-ip", key="ip", rate=rate_from("LOGIN_RATE_PER_IP"), method="POST", block=False)
login_by_username = ratelimit(
    group="login-username", key="post:username", rate=rate_from("LOGIN_RATE_PER_USERNAME"), method="POST", block=False
)
signup_by_ip = ratelimit(group="signup-ip", key="ip", rate=rate_from("SIGNUP_RATE_PER_IP"), method="POST", block=False)


def throttled(request: HttpRequest) -> bool:
    """Whether a limit decorator above found this request over its rate."""
    return bool(getattr(request, "limited", False))
