"""ActiveMQ's own web console, used as a learner uses it, on the bundled course (chapter 6.1).

A cell fills the queue shop.invoices; the learner follows "Broker console" from the
ActiveMQ sandbox card to a new tab, where ActiveMQ's web console (Jetty in the broker's
JVM, proxied through the agent) opens logged in and shows their own broker. From its
"Send" page they send a message to that queue; the chapter's message panel shows it,
as the tap hears the console's send as it hears a cell's. Another learner gets 404.
"""

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COURSE = Path(__file__).resolve().parents[2] / "lessons" / "content" / "broker-academy"
CHAPTER = "/courses/broker-academy/queues-streaming-event-driven/"
CELL = "figure.cell[data-cell=activemq-queue]"
PAYLOAD = "счёт №7 из веб-консоли"


def test_a_learner_sends_from_the_activemq_console_and_sees_it_in_the_panel(
    celery_worker, live_server_url, page_as, new_page, page_errors, learner, units_cleanup, screenshots
):
    course_import(directory=COURSE)
    page = page_as(learner, viewport={"width": 1440, "height": 900})
    page.goto(live_server_url + CHAPTER)
    page.locator(f"{CELL} .cell-run").click()
    expect(page.locator(f"{CELL} .cell-output")).to_contain_text("Всего получено: 6", timeout=150_000)
    expect(page.locator("[data-messages] li.msg", has_text="счёт №6")).not_to_have_count(0, timeout=30_000)

    link = page.locator(".sb-card[data-broker=activemq]").get_by_role("link", name="Консоль брокера")
    expect(link).to_have_attribute("target", "_blank")
    with page.context.expect_page() as opened:
        link.click()
    console = opened.value
    console.wait_for_load_state()
    assert console.url == live_server_url + "/sandboxes/activemq/ui/"

    # Logged in without a prompt: the console's own page, naming the learner's broker and its release.
    expect(console.locator("body")).to_contain_text("Broker", timeout=60_000)
    expect(console.locator("table").first).to_contain_text("sandbox")
    expect(console.locator("body")).to_contain_text("6.3.1")
    console.get_by_role("link", name="Queues", exact=True).click()
    expect(console.get_by_role("link", name="shop.invoices", exact=True)).to_be_visible(timeout=30_000)

    # The "Send" page: a text message to the queue the cell used.
    console.get_by_role("link", name="Send", exact=True).click()
    console.locator("input[name=JMSDestination]").fill("shop.invoices")
    console.locator("select[name=JMSDestinationType]").select_option("queue")
    console.locator("textarea[name=JMSText]").fill(PAYLOAD)
    console.locator("input[type=submit][value=Send]").click()
    # Back on the queue list, the queue counts the message the console sent (nobody consumes it now).
    expect(console).to_have_url(live_server_url + "/sandboxes/activemq/ui/queues.jsp", timeout=30_000)
    row = console.locator("#queues tbody tr", has=console.get_by_role("link", name="shop.invoices", exact=True))
    expect(row.locator("td").nth(1)).to_have_text("1", timeout=30_000)  # messages pending
    console.screenshot(path=str(screenshots / "console-activemq.png"), full_page=True)

    # The chapter's panel shows it like any other message.
    expect(page.locator("[data-messages] li.msg", has_text=PAYLOAD)).to_have_count(1, timeout=30_000)
    assert page_errors == []  # the console's pages and scripts load whole under the prefix and its policy
    # Of the console's cookies only its session crossed: on its path, out of scripts' reach.
    kept = {c["name"]: c for c in console.context.cookies() if c["path"].startswith("/sandboxes/activemq")}
    assert set(kept) == {"JSESSIONID"}
    assert kept["JSESSIONID"]["path"] == "/sandboxes/activemq/ui" and kept["JSESSIONID"]["httpOnly"]

    # Another learner reaches no console here: theirs is not running, and nothing names this one.
    other = page_as(User.objects.create_user("other", password="other-pass-123"))
    response = other.goto(live_server_url + "/sandboxes/activemq/ui/queues.jsp")
    assert response is not None and response.status == 404
    expect(other.get_by_test_id("console-not-running")).to_be_visible()
    assert "shop.invoices" not in other.content()
    # A visitor who is not logged in is sent to log in.
    anonymous = new_page()
    anonymous.goto(live_server_url + "/sandboxes/activemq/ui/queues.jsp")
    assert anonymous.url.startswith(live_server_url + "/accounts/login/?next=")
