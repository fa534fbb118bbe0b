"""While the channel layer has lost Redis, the chapter page says its live updates are paused, and stops saying
so once they resume; the socket stays open throughout.

Redis itself is killed in tests/faults; here the layer's two messages (courseplatform/channel_layer.py)
are sent to the learner's connections through the real layer, so only the page's side is looked at.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from playwright.sync_api import expect

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"


def tell(user_id: int, kind: str) -> None:
    """What the layer puts before the user's connections at either end of an outage (Playwright's own
    event loop holds this thread, so the send runs in a thread of its own)."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, get_channel_layer().group_send(f"user-{user_id}", {"type": kind})).result(timeout=30)


def test_the_page_says_live_updates_are_paused_while_redis_is_away_and_then_that_they_resumed(
    live_server_url, page_as, page_errors, learner
):
    course_import(directory=MINI)
    page = page_as(learner)
    page.goto(live_server_url + "/courses/mini/first/")
    indicator = page.locator("[data-live-indicator]").first
    label = indicator.locator(".live-label")
    expect(indicator).to_have_attribute("data-status", "open", timeout=30_000)
    expect(label).to_have_text("на связи")

    tell(learner.pk, "layer.down")
    expect(label).to_have_text("на связи · обновления приостановлены", timeout=15_000)
    expect(indicator).to_have_attribute("data-paused", "true")
    assert "Ячейки и сообщения брокера идут как прежде" in (indicator.get_attribute("title") or "")

    tell(learner.pk, "layer.up")
    expect(indicator).to_have_attribute("data-paused", "false", timeout=15_000)
    expect(label).to_have_text("на связи")
    assert indicator.get_attribute("title") is None
    expect(indicator).to_have_attribute("data-status", "open")

    # In English, through djangojs.po.
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "en", "url": live_server_url}])
    page.reload()
    expect(label).to_have_text("connected", timeout=30_000)
    tell(learner.pk, "layer.down")
    expect(label).to_have_text("connected · live updates paused", timeout=15_000)
    assert "Cells and broker messages carry on" in (indicator.get_attribute("title") or "")
    assert page_errors == []
