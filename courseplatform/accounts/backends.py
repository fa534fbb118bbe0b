"""Log-in by username and password, refusing the demo accounts' public passwords outside development."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from .demo import DEMO_USERS


class NoDemoPasswordBackend(ModelBackend):
    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any):
        if not settings.DEMO_USERS_ALLOWED and (username, password) in {(u.username, u.password) for u in DEMO_USERS}:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
