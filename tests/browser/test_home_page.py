"""The home page in a real browser: light and dark, no console errors, login works."""

from pathlib import Path

import pytest

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_home_page_renders_in_both_themes_without_console_errors(live_server_url, new_page, page_errors, screenshots, scheme):
    course_import(directory=MINI)
    page = new_page(color_scheme=scheme, viewport={"width": 1280, "height": 800})
    page.goto(live_server_url + "/")
    assert page.locator("h1").inner_text() == "Мини-курс"
    assert page.locator(".chapter-item").count() == 3
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    # The theme follows the system: dark pages have a dark background, light ones a light one.
    channels = [int(c) for c in background.removeprefix("rgb(").rstrip(")").split(",")[:3]]
    assert (sum(channels) < 150) == (scheme == "dark"), background
    page.screenshot(path=str(screenshots / f"home-{scheme}.png"), full_page=True)
    assert page_errors == []


def test_theme_toggle_overrides_the_system_and_is_remembered(live_server_url, new_page, page_errors):
    course_import(directory=MINI)
    page = new_page(color_scheme="light")
    page.goto(live_server_url + "/")
    page.click("[data-theme-toggle]")  # a light system: the first click shows the dark theme
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.reload()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page_errors == []


def test_a_learner_logs_in_from_the_header(live_server_url, new_page, page_errors, learner):
    course_import(directory=MINI)
    page = new_page()
    page.goto(live_server_url + "/")
    page.click("text=Войти")
    page.fill("input[name=username]", "learner")
    page.fill("input[name=password]", "learner-pass-123")
    page.click("button[type=submit]")
    page.wait_for_url(live_server_url + "/")
    assert "learner" in page.locator(".account-menu summary").inner_text()
    assert page_errors == []
