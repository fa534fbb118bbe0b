"""Reading the bundled Russian course as a learner does: marking chapters read without scrolling to
the end (and by reaching it), the table of contents with sections and their sub-sections, coming
back to the section last read from the home page, the theme switch, and the error pages."""

from pathlib import Path
from urllib.parse import unquote

import pytest
from django.conf import settings
from playwright.sync_api import expect

from lessons.course_io import course_import
from lessons.models import Course

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BUNDLED = Path(__file__).resolve().parents[2] / "lessons" / "content" / "broker-academy"
COURSE = "/courses/broker-academy/"
PRODUCER_CONSUMER = COURSE + "kafka-producer-consumer/"  # 6.3
ARCHITECTURE = COURSE + "apache-kafka/"  # 6.2


def test_a_learner_marks_read_from_the_top_reads_a_nested_toc_and_continues_where_they_left_off(
    live_server_url, page_as, page_errors, learner, screenshots
):
    course_import(directory=BUNDLED)
    page = page_as(learner, viewport={"width": 1280, "height": 900})

    # 6.2: the table of contents numbers sections 1, 2, 3 and nests each one's sub-sections as 3.1, 3.2.
    page.goto(live_server_url + ARCHITECTURE)
    sections = page.locator("nav.toc .toc-sections > li")
    body_sections = page.locator(".chapter-body h2").all_inner_texts()  # in a chapter with steps, inside their folds
    expect(sections).to_have_count(len(body_sections))
    kraft = sections.nth(2)
    assert kraft.locator(":scope > a").inner_text() == body_sections[2] == "KRaft: контроллеры и журнал метаданных"
    assert kraft.locator(":scope > .toc-number").inner_text() == "3"
    subsections = kraft.locator(".toc-subsections > li")
    assert subsections.all_inner_texts() == [
        "3.1 Почему ушёл ZooKeeper",
        "3.2 Как устроен кворум",
        "3.3 Совмещённые и выделенные роли",
    ]
    # Nested on screen too: a sub-section starts to the right of its section.
    assert subsections.first.locator("a").bounding_box()["x"] > kraft.locator(":scope > a").bounding_box()["x"]
    assert sections.nth(1).locator(".toc-subsections").count() == 0  # "Брокеры и кластер" has none
    page.locator("nav.toc").screenshot(path=str(screenshots / "reading-toc.png"))

    # Reading 6.2 to its end marks it read without a click.
    top = page.get_by_test_id("mark-read-top")
    expect(top).to_contain_text("Отметить главу прочитанной")
    page.keyboard.press("End")
    expect(top).to_contain_text("Прочитано", timeout=10_000)
    expect(page.locator(".mark-read-note")).to_contain_text("дочитали")

    # 6.3: marked read from its header, no scrolling.
    page.goto(live_server_url + PRODUCER_CONSUMER)
    top = page.get_by_test_id("mark-read-top")
    expect(top).to_be_in_viewport()
    assert page.evaluate("window.scrollY") == 0
    with page.expect_response(lambda r: r.url.endswith("/read") and r.request.method == "POST") as answer:
        top.click()
    assert answer.value.ok
    expect(top).to_contain_text("Прочитано")
    expect(page.get_by_test_id("mark-read")).to_contain_text("Прочитано")  # the one at the bottom agrees
    page.screenshot(path=str(screenshots / "reading-mark-read.png"))

    # Going to a section through the table of contents: the page reports where the learner is.
    link = page.locator("nav.toc a", has_text="Смещения и коммиты")
    anchor = unquote(link.get_attribute("href").removeprefix("#"))
    # Waiting for the answer, not the request: the server stores the place before the home page is asked for.
    with page.expect_response(
        lambda r: r.url.endswith("/position") and unquote(r.request.post_data or "").replace("+", " ") == f"anchor={anchor}",
        timeout=10_000,
    ) as stored:
        link.click()
    assert stored.value.status == 204

    # The home page leads back there: the chapter and its section, opened at that section.
    page.goto(live_server_url + "/")
    resume = page.get_by_test_id("resume")
    expect(resume).to_contain_text("6.3")
    expect(resume).to_contain_text("Смещения и коммиты")
    expect(page.locator(".chapter-item.is-read")).to_have_count(2)
    expect(page.get_by_test_id("course-progress")).to_contain_text("Прочитано глав: 2 из 4")
    page.screenshot(path=str(screenshots / "reading-continue.png"))
    page.get_by_test_id("resume-link").click()
    page.wait_for_url(f"**{PRODUCER_CONSUMER}#*")
    heading = page.locator(f"[id='{anchor}']")
    expect(heading).to_have_text("Смещения и коммиты")
    expect(heading).to_be_in_viewport()
    page.wait_for_load_state("load")
    # Still at the top of the window once the page has settled (cells' editors and pictures loaded).
    expect(page.locator("nav.toc a[aria-current=true]")).to_have_text("Смещения и коммиты")
    top_of_heading = heading.evaluate("h => h.getBoundingClientRect().top")
    assert 0 <= top_of_heading < 900 / 3, top_of_heading
    page.screenshot(path=str(screenshots / "reading-continued.png"))
    assert page_errors == []


def test_the_first_click_of_the_theme_switch_changes_the_page_on_a_light_system(
    live_server_url, new_page, page_errors, screenshots
):
    course_import(directory=BUNDLED)
    for system, first in (("light", "dark"), ("dark", "light")):
        page = new_page(viewport={"width": 1280, "height": 800}, color_scheme=system)
        page.goto(live_server_url + COURSE)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        page.locator("[data-theme-toggle]").click()
        page.wait_for_function("bg => getComputedStyle(document.body).backgroundColor !== bg", arg=background)
        assert page.evaluate("document.documentElement.dataset.theme") == first
        if system == "light":
            page.screenshot(path=str(screenshots / "reading-theme-dark.png"))
        # The second click comes back to the system's look, and follows the system again.
        page.locator("[data-theme-toggle]").click()
        page.wait_for_function("bg => getComputedStyle(document.body).backgroundColor === bg", arg=background)
        assert page.evaluate("[document.documentElement.dataset.theme, localStorage.getItem('theme')]") == ["auto", None]
    assert page_errors == []


def test_a_learner_on_an_instructor_page_and_anyone_on_a_missing_page_see_a_styled_page_with_a_way_back(
    live_server_url, page_as, page_errors, learner, screenshots
):
    course_import(directory=BUNDLED)
    page = page_as(learner, viewport={"width": 1280, "height": 800})

    response = page.goto(live_server_url + "/author/")
    assert response.status == 403
    expect(page.locator(".site-header .brand")).to_be_visible()
    expect(page.locator(".account-menu summary")).to_contain_text("learner")  # the learner's own header
    error = page.get_by_test_id("error-page")
    expect(error.locator("h1")).to_have_text("Нет доступа к этой странице")
    expect(error).to_contain_text("только преподавателям")
    # The site's stylesheet is applied: the header sticks, the page is not the browser's bare default.
    assert page.locator(".site-header").evaluate("e => getComputedStyle(e).position") == "sticky"
    page.screenshot(path=str(screenshots / "reading-403.png"))
    page.get_by_test_id("error-home").click()
    expect(page.locator(".hero h1")).to_have_text(Course.objects.get(slug="broker-academy").title)
    assert page.url.rstrip("/") == live_server_url

    response = page.goto(live_server_url + "/courses/broker-academy/no-such-chapter/")
    assert response.status == 404
    expect(page.get_by_test_id("error-page").locator("h1")).to_have_text("Такой страницы нет")
    assert page.locator(".site-header").evaluate("e => getComputedStyle(e).position") == "sticky"
    page.screenshot(path=str(screenshots / "reading-404.png"))

    # In the learner's language.
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "en", "url": live_server_url}])
    response = page.goto(live_server_url + "/courses/no-such-course/")
    assert response.status == 404
    expect(page.get_by_test_id("error-page").locator("h1")).to_have_text("There is no such page")
    expect(page.get_by_test_id("error-home")).to_have_text("Home")
    # The browser logs each refused page load; nothing else may appear.
    assert [e for e in page_errors if "status of 403" not in e and "status of 404" not in e] == []
