"""The broker's own web console, used as a learner uses it, on the bundled course (chapter 6.1, RabbitMQ).

A cell fills the queue images.resize; the learner follows "Broker console" from the
sandbox card to a new tab, where RabbitMQ's management UI opens already logged in,
lists the queue, and publishes a message from its own "Publish message" form. The
chapter's message panel shows that message like any other: the tap hears the console's
publish as it hears a cell's. Kafka's console page says why there is none; NATS's,
before its sandbox runs, offers to start it and then shows NATS' monitoring.
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COURSE = Path(__file__).resolve().parents[2] / "lessons" / "content" / "broker-academy"
CHAPTER = "/courses/broker-academy/queues-streaming-event-driven/"
CELL = "figure.cell[data-cell=rabbit-publish-tasks]"
PAYLOAD = "resize cat.png from the console"


def test_a_learner_publishes_from_the_rabbitmq_console_and_sees_it_in_the_panel(
    celery_worker, live_server_url, page_as, page_errors, learner, units_cleanup, screenshots
):
    course_import(directory=COURSE)
    page = page_as(learner, viewport={"width": 1440, "height": 900})
    page.goto(live_server_url + CHAPTER)
    page.locator(f"{CELL} .cell-run").click()
    expect(page.locator(f"{CELL} .cell-output")).to_contain_text("Сообщений в очереди images.resize: 6", timeout=150_000)
    expect(page.locator("[data-messages] li.msg")).to_have_count(6, timeout=30_000)

    link = page.locator(".sb-card[data-broker=rabbitmq]").get_by_role("link", name="Консоль брокера")
    expect(link).to_have_attribute("target", "_blank")
    with page.context.expect_page() as opened:
        link.click()
    console = opened.value
    console.wait_for_load_state()
    assert console.url == live_server_url + "/sandboxes/rabbitmq/ui/"

    # Logged in without a form: the management UI's own tabs, its user shown, no login box.
    expect(console.locator("#logout")).to_contain_text("guest", timeout=30_000)
    expect(console.locator("input[name=password]")).to_have_count(0)
    console.locator("#tabs").get_by_role("link", name=re.compile("^Queues")).click()
    queue = console.get_by_role("link", name="images.resize", exact=True)
    expect(queue).to_be_visible(timeout=30_000)
    queue.click()

    # The queue's page: open "Publish message", type a payload, press the button.
    console.get_by_role("heading", name="Publish message").click()
    console.locator("textarea[name=payload]").fill(PAYLOAD)
    console.locator("input[type=submit][value='Publish message']").click()
    expect(console.get_by_text("Message published")).to_be_visible(timeout=30_000)
    console.screenshot(path=str(screenshots / "broker-console-rabbitmq.png"))

    # The chapter's panel shows it like any other message.
    expect(page.locator("[data-messages] li.msg", has_text=PAYLOAD)).to_have_count(1, timeout=30_000)
    expect(page.locator("[data-messages] li.msg")).to_have_count(7)

    # Kafka has no console here, and its page says so and where to look instead.
    console.goto(live_server_url + "/sandboxes/kafka/ui/")
    expect(console.get_by_test_id("console-note")).to_contain_text("У Kafka нет своей веб-консоли")
    # NATS is not running: its console page offers to start it, shows the start, then the monitoring index.
    console.goto(live_server_url + "/sandboxes/nats/ui/")
    expect(console.get_by_test_id("console-not-running")).to_contain_text("не запущена")
    console.get_by_role("button", name="Запустить песочницу").click()
    expect(console.get_by_test_id("console-starting")).to_contain_text("Песочница запускается")
    expect(console.get_by_role("link", name=re.compile("General"))).to_be_visible(timeout=120_000)
    console.get_by_role("link", name=re.compile("General")).click()
    expect(console.locator("body")).to_contain_text('"server_id"', timeout=30_000)
    assert page_errors == []
