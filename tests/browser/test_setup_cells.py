"""A learner never runs a chapter's setup cell, and the chapter still shows what its text says.

Chapter 6.3 of the bundled Russian course: the first cell the learner runs is
preceded by the folded setup, which reports that it ran and what the broker now
holds; the partition and consumer-group cells then show the partitions and two
consumers reading; a reset runs the setup again before the next cell; and a
setup that fails (a fixture course) stops the run with a message saying which
setup and what to do. One Kafka sandbox serves every step.
"""

import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RUSSIAN = Path(settings.COURSE_DIRS[0])
FAILING = Path(__file__).resolve().parents[1] / "fixtures" / "course-setup-fails"
CHAPTER = "/courses/broker-academy/kafka-producer-consumer/"
BROKER_START_MS = 150_000


def test_the_setup_runs_before_the_first_cell_again_after_a_reset_and_a_failed_one_says_what_to_do(
    celery_worker, live_server_url, page_as, page_errors, learner, units_cleanup, screenshots
):
    course_import(directory=RUSSIAN)
    course_import(directory=FAILING)
    page = page_as(learner, viewport={"width": 1440, "height": 900})
    page.goto(live_server_url + CHAPTER)

    def cell(key: str):
        return page.locator(f"figure.cell[data-cell={key}]")

    def run(key: str) -> None:
        cell(key).locator(".cm-content").click()
        page.keyboard.press("Shift+Enter")

    fold = page.locator("details.setup", has=cell("setup-topics"))
    setup_state = fold.locator("summary .setup-state")
    setup_output = cell("setup-topics").locator(".cell-output")

    # The first runnable cell: the setup runs before it by itself, and its fold says so.
    run("produce-orders")
    expect(setup_state).to_have_text("выполнена", timeout=BROKER_START_MS)
    expect(fold).not_to_have_attribute("open", "")
    orders = cell("produce-orders").locator(".cell-output")
    expect(orders.locator(".exit-badge")).to_be_visible(timeout=60_000)
    # Keys spread over the three partitions the text promises: customer-03 lands apart from customer-17.
    placed = dict(re.findall(r"(customer-\d+): заказ \d+ -> партиция (\d)", orders.inner_text()))
    assert len(set(placed.values())) == 3, orders.inner_text()
    fold.locator("summary").click()
    expect(setup_output).to_contain_text(re.compile(r"webshop-orders +партиций: 3"))
    expect(setup_output).to_contain_text(re.compile(r"site-clicks +партиций: 4"))
    expect(cell("setup-topics").locator(".cell-prompt")).to_have_text("[1]")
    # The fixed moment: the fold's title says it ran, and its output shows the partitions.
    page.set_viewport_size({"width": 1440, "height": 1400})
    fold.evaluate("fold => window.scrollTo(0, fold.getBoundingClientRect().top + window.scrollY - 140)")
    page.screenshot(path=str(screenshots / "setup-cell.png"))
    page.set_viewport_size({"width": 1440, "height": 900})

    # The consumer group: both consumers read two partitions each.
    run("two-consumers")
    clicks = cell("two-consumers").locator(".cell-output")
    expect(clicks.locator(".exit-badge.exit-ok")).to_be_visible(timeout=90_000)
    expect(clicks).to_contain_text(re.compile(r"A прочитал по партициям: \{\d+: \d+, \d+: \d+\}"))
    expect(clicks).to_contain_text(re.compile(r"B прочитал по партициям: \{\d+: \d+, \d+: \d+\}"))

    # A reset gives a new broker: the setup runs again before the next cell.
    kafka = page.locator(".sb-card[data-broker=kafka]")
    kafka.locator(".sb-reset").click()
    kafka.get_by_role("button", name="Точно сбросить?").click()
    expect(kafka).not_to_have_attribute("data-state", "ready", timeout=30_000)
    expect(kafka).to_have_attribute("data-state", "ready", timeout=BROKER_START_MS)
    run("produce-orders")
    expect(orders.locator(".exit-badge.exit-ok")).to_be_visible(timeout=60_000)
    expect(cell("setup-topics").locator(".cell-prompt")).to_have_text("[4]")
    expect(setup_state).to_have_text("выполнена")
    expect(setup_output).to_contain_text(re.compile(r"webshop-orders +партиций: 3"))
    expect(orders).to_contain_text("customer-17: заказ 1001 -> партиция 1, offset 0")  # a fresh topic

    # A setup that fails: the learner's cell does not run and says which setup failed and what to do.
    page.goto(live_server_url + "/courses/setup-fails/broken-setup/")
    cell("needs-setup").locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    needs = cell("needs-setup").locator(".cell-output")
    expect(needs).to_contain_text("Подготовка главы не удалась (ячейка подготовки «prepare-broker»: код завершения 1)")
    expect(needs).to_contain_text("Сбросьте песочницу или запустите ячейку подготовки сами")
    expect(needs).not_to_contain_text("ячейка выполнилась")
    broken = page.locator("details.setup", has=cell("prepare-broker"))
    expect(broken.locator("summary .setup-state")).to_have_text("не удалась")
    expect(broken).to_have_attribute("open", "")
    expect(cell("prepare-broker").locator(".cell-output")).to_contain_text("подготовка сломана нарочно")
    # The exercise check is refused the same way.
    page.locator("section.exercise[data-exercise=after-setup] .check-button").click()
    expect(page.locator("section.exercise[data-exercise=after-setup] .check-verdict")).to_contain_text(
        "Подготовка главы не удалась"
    )
    assert page_errors == []
