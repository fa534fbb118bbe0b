"""The web server is killed under a learner's open chapter, and comes back: the page, never reloaded, reconnects.

Chapter 6.1 of the bundled course in Chromium, its RabbitMQ cell run once. Then uvicorn is killed with
SIGKILL and, while it is down, the learner's sandbox is stopped (by the worker, as the idle reaper would):
the page says it has no connection and counts down to its next try; the server is started again the way
its supervisor would (same command, same address); the page reconnects by itself, shows the sandbox as the
database has it now (stopped, not the "ready" it last heard), and the next Run starts the broker again (on the
data the stop kept) and runs the cell, its messages arriving in the panel. tests/faults does the same with a socket that behaves as
static/js/live.js does; this is live.js itself.
"""

import os
import re
import signal
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lessons.course_io import course_import
from sandboxes.models import Sandbox, State
from sandboxes.services import actions
from tests.services import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COURSE = Path(__file__).resolve().parents[2] / "lessons" / "content" / "broker-academy"
CHAPTER = "/courses/broker-academy/queues-streaming-event-driven/"
CELL = "figure.cell[data-cell=rabbit-publish-tasks]"
QUEUED = "Сообщений в очереди images.resize: {n}"


def test_a_killed_web_server_comes_back_and_the_open_chapter_reconnects_and_shows_the_sandbox_as_it_is(
    celery_worker, asgi_server, live_server_url, page_as, page_errors, learner, units_cleanup, screenshots
):
    course_import(directory=COURSE)
    page = page_as(learner, viewport={"width": 1440, "height": 900})
    page.goto(live_server_url + CHAPTER)
    indicator = page.locator("[data-live-indicator]").first
    label = indicator.locator(".live-label")
    card = page.locator("[data-sandbox-status] [data-broker=rabbitmq]")
    messages = page.locator("[data-messages] li.msg")
    expect(indicator).to_have_attribute("data-status", "open", timeout=30_000)
    page.locator(f"{CELL} .cell-run").click()
    expect(page.locator(f"{CELL} .cell-output")).to_contain_text(QUEUED.format(n=6), timeout=150_000)
    expect(card).to_have_attribute("data-state", "ready", timeout=30_000)
    expect(messages).to_have_count(6, timeout=30_000)
    page.evaluate("window.sameDocument = true")  # gone if the page were reloaded

    os.killpg(asgi_server.process.pid, signal.SIGKILL)
    expect(indicator).to_have_attribute("data-status", "closed", timeout=15_000)
    expect(label).to_have_text(re.compile(r"нет связи · повтор через \d+ с|подключение…"))
    page.screenshot(path=str(screenshots / "web-server-down.png"))
    # While the server is down the sandbox changes: the page must show what is, not what it last heard.
    actions.sandbox_stop(user_id=learner.pk, broker="rabbitmq")
    wait_for(lambda: Sandbox.objects.get(user=learner, broker="rabbitmq").state == State.STOPPED, timeout=60, what="stopped")
    asgi_server.process.wait(timeout=10)
    asgi_server.restart()  # what the supervisor does: the same command, on the same address

    expect(indicator).to_have_attribute("data-status", "open", timeout=60_000)
    expect(label).to_have_text("на связи")
    expect(card).to_have_attribute("data-state", re.compile("^(stopped|none)$"), timeout=30_000)  # none: not listed
    assert page.evaluate("window.sameDocument === true"), "the page was reloaded"

    page.locator(f"{CELL} .cell-run").click()
    expect(card).to_have_attribute("data-state", "ready", timeout=150_000)
    expect(page.locator(f"{CELL} .exit-badge")).to_have_class(re.compile("exit-ok"), timeout=150_000)
    # The stop kept the learner's data (kept state): the six tasks of the first run are still queued.
    expect(page.locator(f"{CELL} .cell-output")).to_contain_text(QUEUED.format(n=12))
    expect(messages).to_have_count(12, timeout=30_000)
    page.screenshot(path=str(screenshots / "web-server-back.png"))
    assert page.evaluate("window.sameDocument === true"), "the page was reloaded"
    # The dropped socket and the failed tries are the browser's own words; the page's code raised nothing.
    assert not [e for e in page_errors if "pageerror" in e], page_errors
