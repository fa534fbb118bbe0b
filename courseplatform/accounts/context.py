"""Template context: what the header's account menu needs on every page."""

from django.http import HttpRequest

from .roles import user_is_instructor


def account(request: HttpRequest) -> dict[str, object]:
    return {"is_instructor": user_is_instructor(user=request.user)}
