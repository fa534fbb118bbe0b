"""One course in two languages: the switch opens the same place of the other edition, and what the
learner has done in one (read, passed) is done in the other; the page and the server speak its language."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Locator, Page, expect

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RU, EN = (Path(d) for d in settings.COURSE_DIRS)
CHAPTER = "apache-kafka"  # one broker (Kafka): the test starts one sandbox
EXERCISE = "section.exercise[data-exercise=orders-topic]"
SECTION = 3  # "Почему ушёл ZooKeeper" / "Why ZooKeeper went away": well below the top


def sections(page: Page) -> list[str]:
    """Ids of the chapter's h2/h3 headings as the page shows them, in reading order."""
    return page.eval_on_selector_all(".chapter-body h2[id], .chapter-body h3[id]", "hs => hs.map(h => h.id)")


def scroll_to_top_of_window(page: Page, heading: Locator) -> None:
    """Scroll with the mouse wheel, as a reader does, until ``heading`` is just under the header."""
    page.mouse.move(400, 450)
    page.mouse.wheel(0, heading.bounding_box()["y"] - 80)
    page.wait_for_function("h => Math.abs(h.getBoundingClientRect().top - 80) < 40", arg=heading.element_handle())


def test_switching_language_opens_the_same_section_of_the_other_edition_with_progress_kept(
    celery_worker, live_server_url, page_as, page_errors, learner, units_cleanup, screenshots
):
    ru, en = course_import(directory=RU), course_import(directory=EN)
    page = page_as(learner, viewport={"width": 1280, "height": 900})
    page.goto(f"{live_server_url}/courses/{ru.slug}/{CHAPTER}/")
    ru_sections = sections(page)

    # In Russian: start the chapter's broker (it comes up while the learner reads), mark the chapter
    # read, scroll up to a section, and switch the UI to English there.
    page.click(".sb-card[data-broker=kafka] .sb-start")
    expect(page.locator(".sb-card[data-broker=kafka]")).not_to_have_attribute("data-state", "none")
    page.click("[data-testid=mark-read]")
    expect(page.locator("[data-testid=mark-read]")).to_contain_text("Прочитано")
    scroll_to_top_of_window(page, page.locator(f"[id='{ru_sections[SECTION]}']"))
    page.select_option("#lang-select", "en")

    # The English chapter, at the same section, already read; the page's own words are English too.
    page.wait_for_url(re.compile(re.escape(f"/courses/{en.slug}/{CHAPTER}/#") + ".+$"))
    en_sections = sections(page)
    assert len(en_sections) == len(ru_sections)
    assert page.url.endswith("#" + en_sections[SECTION])
    landed = page.locator(f"[id='{en_sections[SECTION]}']")
    expect(landed).to_be_in_viewport()
    assert landed.evaluate("h => h.getBoundingClientRect().top < window.innerHeight / 3")
    expect(page.locator("h1")).to_have_text(en.chapters.get(slug=CHAPTER).title)
    expect(page.locator("[data-testid=mark-read]")).to_have_text("✓ Read: mark as unread")
    expect(page.locator("[data-live-panel] h2").first).to_have_text("Sandbox")
    expect(page.locator(".cell-run").first).to_contain_text("Run")
    expect(page.locator("[data-testid=edition-ru]")).to_have_text("Читать по-русски")
    page.screenshot(path=str(screenshots / "english-chapter.png"))

    # In English: pass the exercise with its solution; the server's verdict comes in English.
    exercise = page.locator(EXERCISE)
    exercise.locator("details.solution summary").click()
    expect(exercise.locator("details.solution summary")).to_have_text("Solution")
    exercise.locator("details.solution .cell-run").click()
    expect(exercise.locator("details.solution .exit-badge.exit-ok")).to_be_visible(timeout=120_000)
    exercise.locator(".check-button").click()
    expect(exercise.locator(".check-reason")).to_have_text("Check passed.", timeout=60_000)

    # Back to Russian at the exercise: the same exercise, passed there too, the chapter still read.
    heading = exercise.locator("h3")
    position = en_sections.index(heading.get_attribute("id"))
    scroll_to_top_of_window(page, heading)
    page.select_option("#lang-select", "ru")
    page.wait_for_url(re.compile(re.escape(f"/courses/{ru.slug}/{CHAPTER}/#") + r".+$"))
    expect(page.locator(f"[id='{ru_sections[position]}']")).to_be_in_viewport()
    exercise = page.locator(EXERCISE)
    expect(exercise).to_have_class(re.compile(r"\bis-passed\b"))
    expect(exercise.locator(".check-verdict")).to_contain_text("Принято!")
    expect(page.locator("[data-testid=mark-read]")).to_contain_text("Прочитано")
    assert page_errors == []
