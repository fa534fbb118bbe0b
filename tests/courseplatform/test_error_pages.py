"""The 403, 404 and 500 pages: in the site's layout, in the visitor's language; the 500 page without the database."""

import pytest
from django.contrib.auth.models import User
from django.test import RequestFactory
from django.utils import translation
from django.views.defaults import server_error


def test_the_500_page_renders_in_the_layout_without_database_or_request_context():
    # No django_db mark: any query would fail the test, as a broken database would fail the page.
    with translation.override("en"):
        response = server_error(RequestFactory().get("/courses/x/"))
    html = response.content.decode()
    assert response.status_code == 500
    assert '<header class="site-header">' in html and "/static/css/site.css" in html
    assert "Something broke on our side" in html and 'data-testid="error-home"' in html
    assert "data-theme-toggle" in html and "lang-switch" not in html  # nothing that needs the request


@pytest.mark.django_db
def test_a_learner_on_an_authoring_page_gets_a_403_page_that_says_why(client):
    client.force_login(User.objects.create_user("reader", password="x-pass-123"))
    response = client.get("/author/")
    html = response.content.decode()
    assert response.status_code == 403
    assert '<header class="site-header">' in html and "reader" in html
    assert "только преподавателям" in html


@pytest.mark.django_db
def test_a_missing_page_is_a_404_page_in_the_chosen_language(client, settings):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    response = client.get("/courses/no-such-course/")
    assert response.status_code == 404
    assert "There is no such page" in response.content.decode()
