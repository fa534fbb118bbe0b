"""Cross-site request forgery: every route of the site refuses a POST without the CSRF token.

The routes are not listed by hand: the test walks Django's URL resolver, so a view added
tomorrow (or one marked csrf_exempt by mistake) is tried too. It posts as a logged-in
instructor, the user a forged form would most like to borrow.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

# One value per path converter; the CSRF check runs before the view, so any value that resolves will do.
SAMPLES = {"slug": "mini", "int": "1", "str": "x", "path": "x/y", "uuid": "00000000-0000-0000-0000-000000000000"}


def raw_routes(patterns, prefix: str = "") -> list[str]:
    found = []
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += raw_routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            found.append(route)
    return found


def routes() -> list[str]:
    """Every route of the site as a concrete path."""
    concrete = set()
    for raw in raw_routes(get_resolver().url_patterns):
        # The admin's routes are regexes: drop anchors, fill named groups with a sample.
        route = re.sub(r"\(\?P<\w+>[^)]*\)", "1", raw).replace("^", "").replace("$", "").replace("\\", "")
        concrete.add("/" + re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLES[m[1] or "str"], route))
    return sorted(concrete)


def test_every_route_refuses_a_post_without_the_csrf_token(instructor):
    client = Client(enforce_csrf_checks=True)
    client.force_login(instructor)
    tried = routes()
    assert len(tried) > 40, tried  # the lessons, authoring, accounts, i18n and admin routes are all there
    accepted = {}
    for path in tried:
        status = client.post(path, {"title": "forged", "next": "/"}).status_code
        if status != 403:
            accepted[path] = status
    assert accepted == {}, f"a POST without a CSRF token was not refused on: {accepted}"


def test_the_same_post_with_the_token_gets_through(instructor):
    # The other side of the coin: the refusal above is the missing token's doing, not the route's.
    from pathlib import Path

    from lessons.course_io import course_import

    # The preview is a page of a course its instructor authors.
    course_import(directory=Path(__file__).resolve().parents[1] / "fixtures" / "course-mini").instructors.add(instructor)
    client = Client(enforce_csrf_checks=True)
    client.force_login(instructor)
    page = client.get("/author/")
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else client.cookies["csrftoken"].value
    # As the editor sends it: JSON with the token in the header.
    body = {"markdown": "## Привет\n", "meta": {"title": "Т", "slug": "t", "number": "1", "order": 1}}
    response = client.post("/author/mini/preview", body, content_type="application/json", headers={"X-CSRFToken": token})
    assert response.status_code == 200, response.content[:300]
    without = client.post("/author/mini/preview", body, content_type="application/json")
    assert without.status_code == 403
