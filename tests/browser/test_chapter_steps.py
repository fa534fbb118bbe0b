"""A long chapter of the bundled course in steps, as a learner meets it: the steps list with minutes, passing a
step folds it and opens the next, the progress is kept for the next visit, and a link into a folded step opens it."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BUNDLED = Path(__file__).resolve().parents[2] / "lessons" / "content" / "broker-academy"
PRODUCER_CONSUMER = "/courses/broker-academy/kafka-producer-consumer/"  # 6.3


def test_a_learner_passes_a_step_comes_back_to_it_folded_and_opens_it_from_the_contents(
    live_server_url, page_as, page_errors, learner, screenshots
):
    course_import(directory=BUNDLED)
    page = page_as(learner, viewport={"width": 1280, "height": 900})
    page.goto(live_server_url + PRODUCER_CONSUMER)

    steps = page.locator("details.step")
    items = page.locator("[data-step-item]")
    count = steps.count()
    assert count >= 4
    expect(items).to_have_count(count)
    expect(page.locator("[data-steps-count]")).to_have_text(f"Пройдено шагов: 0 из {count}")
    assert all("мин" in text for text in page.locator(".step-list .step-minutes").all_inner_texts())
    for i in range(count):
        expect(steps.nth(i)).to_have_attribute("open", "")
    expect(steps.nth(1).locator("summary")).to_contain_text(f"Шаг 2 из {count}")

    # Passing step 1: it folds to its bar, step 2 stays open and comes to the top, the list and the count follow.
    with page.expect_response(lambda r: "/steps/1" in r.url and r.request.method == "POST") as answer:
        page.get_by_test_id("step-done-1").click()
    assert answer.value.json() == {"done": [1], "read": False}
    expect(steps.nth(0)).not_to_have_attribute("open", "")
    expect(steps.nth(1)).to_have_attribute("open", "")
    expect(steps.nth(1).locator("summary")).to_be_in_viewport()
    bar_top = steps.nth(1).locator("summary").evaluate("s => s.getBoundingClientRect().top")
    assert bar_top >= page.locator("header").first.evaluate("h => h.getBoundingClientRect().bottom")  # not under it
    expect(items.nth(0)).to_have_class("is-done")
    expect(page.locator("[data-steps-count]")).to_have_text(f"Пройдено шагов: 1 из {count}")
    page.screenshot(path=str(screenshots / "steps-passed-one.png"))

    # The next visit finds it folded; a section of it reached from the contents opens it.
    page.reload()
    expect(steps.nth(0)).not_to_have_attribute("open", "")
    expect(steps.nth(0)).to_have_class("step is-done")
    record = page.locator("nav.toc a", has_text="Из чего состоит запись")
    record.click()
    expect(steps.nth(0)).to_have_attribute("open", "")
    expect(page.locator(".chapter-body h3", has_text="Из чего состоит запись")).to_be_in_viewport()

    # Taking the mark off: the step counts as not passed again, here and after a reload.
    expect(page.get_by_test_id("step-done-1")).to_contain_text("отметить непройденным")
    with page.expect_response(lambda r: "/steps/1" in r.url) as answer:
        page.get_by_test_id("step-done-1").click()
    assert answer.value.json() == {"done": [], "read": False}
    page.reload()
    expect(page.locator("[data-steps-count]")).to_have_text(f"Пройдено шагов: 0 из {count}")
    expect(steps.nth(0)).to_have_attribute("open", "")
    assert page_errors == []
