"""A learner stops their Kafka sandbox and starts it again: their messages are still there, and the page says so.

On the bundled course, chapter 6.3: the learner produces the six orders, stops the sandbox
from the status area, sees that the next start restores the data, starts it, and reads the
six orders back with a consumer group of their own; then stops once more and discards what
was kept, with confirmation, and the status area promises a fresh broker. Before the first
start, the card of the never-started broker says nothing about kept data (there is none).
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lessons.course_io import course_import
from sandboxes.backends import get_backend

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COURSE = Path(__file__).resolve().parents[2] / "lessons" / "content" / "broker-academy"
CHAPTER = "/courses/broker-academy/kafka-producer-consumer/"
PRODUCE = "figure.cell[data-cell=produce-orders]"
CONSUME = "figure.cell[data-cell=group-manual-commit]"
CARD = ".sb-card[data-broker=kafka]"


@pytest.fixture
def kept_cleanup():
    yield
    backend = get_backend()
    for key in backend.kept_keys():
        backend.discard_kept(key)


def test_a_stopped_kafka_sandbox_starts_again_with_the_learners_messages_and_says_it_restored_them(
    celery_worker, live_server_url, page_as, page_errors, learner, units_cleanup, kept_cleanup, screenshots
):
    course_import(directory=COURSE)
    page = page_as(learner, viewport={"width": 1440, "height": 900})
    page.goto(live_server_url + CHAPTER)
    card = page.locator(CARD)
    kept = card.locator(".sb-kept-text")
    # Never started, nothing kept: no line about what the start gives (it would be on every card).
    expect(card).to_be_visible()
    expect(page.locator("[data-live-indicator]").first).to_have_attribute("data-status", "open", timeout=30_000)
    expect(card.locator(".sb-kept")).to_be_hidden()
    expect(kept).to_have_text("")
    page.screenshot(path=str(screenshots / "kept-never-started-card.png"))

    page.locator(f"{PRODUCE} .cell-run").click()
    expect(page.locator(f"{PRODUCE} .cell-output")).to_contain_text("customer-17: заказ 1006", timeout=150_000)
    expect(page.locator(f"{PRODUCE} .exit-badge")).to_have_class(re.compile("exit-ok"))

    card.locator(".sb-stop").click()
    expect(card).to_have_attribute("data-state", "stopped", timeout=90_000)
    expect(kept).to_have_text(re.compile(r"^будет восстановлено: данные от .*\d"))

    card.locator(".sb-start").click()
    expect(card).to_have_attribute("data-state", "ready", timeout=150_000)
    expect(kept).to_have_text(re.compile(r"^восстановлено: данные от .*\d"))
    page.locator(f"{CONSUME} .cell-run").click()
    output = page.locator(f"{CONSUME} .cell-output")
    expect(output).to_contain_text("Обработано 6 заказов.", timeout=120_000)
    expect(output).to_contain_text("заказ 1006")

    # What is kept can be thrown away, after a confirmation; the next start is then a fresh broker.
    card.locator(".sb-stop").click()
    expect(card).to_have_attribute("data-state", "stopped", timeout=90_000)
    expect(kept).to_have_text(re.compile(r"^будет восстановлено"))
    card.locator(".sb-discard").click()
    card.locator(".sb-discard-confirm").click()
    expect(kept).to_have_text("при запуске: новый брокер, без данных")
    assert get_backend().kept_keys() == []
    assert page_errors == []
