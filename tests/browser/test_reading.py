"""A learner reads a chapter in a real browser, marks it done, and sees progress on the course page."""

from pathlib import Path

import pytest

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"


def test_reading_a_chapter_and_marking_it_done_shows_on_the_course_page(
    live_server_url, page_as, page_errors, learner, screenshots
):
    course_import(directory=MINI)
    page = page_as(learner, viewport={"width": 1280, "height": 900})
    page.goto(live_server_url + "/courses/mini/first/")
    assert page.locator("h1").inner_text() == "Первая глава"
    assert page.locator("nav.toc a").first.inner_text() == "Публикация"
    assert page.locator(".chapter-body img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    # Hints open one at a time.
    assert page.locator(".hint:visible").count() == 0
    page.click(".hint-button")
    assert page.locator(".hint:visible").count() == 1
    page.screenshot(path=str(screenshots / "chapter-reading.png"), full_page=False)
    page.click("[data-testid=mark-read]")
    page.wait_for_load_state("networkidle")
    assert "Прочитано" in page.locator("[data-testid=mark-read]").inner_text()
    page.goto(live_server_url + "/courses/mini/")
    assert "Прочитано глав: 1 из 3" in page.locator("[data-testid=course-progress]").inner_text()
    assert page.locator(".chapter-item.is-read").count() == 1
    assert page_errors == []


def test_a_phone_sized_screen_reads_the_chapter_without_sideways_scrolling(
    live_server_url, page_as, page_errors, learner, screenshots
):
    course_import(directory=MINI)
    page = page_as(learner, viewport={"width": 390, "height": 844}, color_scheme="dark")
    page.goto(live_server_url + "/courses/mini/first/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(screenshots / "chapter-phone-dark.png"), full_page=False)
    assert page_errors == []
