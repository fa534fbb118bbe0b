"""The admission queue as a learner meets it on chapter 6.1 of the bundled course: with the platform full,
running a NATS cell says their place in the cell and in the sandbox card, and when room frees the card
moves on to the broker starting, then ready, without a reload (tests/security/test_admission.py proves
the queue itself over WebSockets)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from lessons.course_io import course_import
from sandboxes.brokers import BROKERS
from sandboxes.models import Sandbox, State
from sandboxes.services import actions
from tests.security.test_admission import START_S, platform_with_capacity
from tests.services import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_learner_beyond_capacity_reads_their_place_and_the_sandbox_starts_when_room_frees(
    celery_worker, live_server_url, page_as, page_errors, learner, units_cleanup, screenshots, settings
):
    settings.SANDBOX_CAPACITY_MB = BROKERS["nats"].memory_mb  # room for one NATS unit, here as on the server
    course = course_import(directory=Path(settings.COURSE_DIRS[0]))
    other = User.objects.create_user("other", password="other-pass-123")
    with platform_with_capacity(celery_worker, settings.SANDBOX_CAPACITY_MB) as (url, _):
        taken = actions.sandbox_ensure(user_id=other.pk, broker="nats")  # the one unit the platform has room for
        page = page_as(learner, viewport={"width": 1440, "height": 900})
        page.goto(f"{url}/courses/{course.slug}/queues-streaming-event-driven/")
        figure = page.locator("figure.cell[data-cell=nats-pubsub]")
        figure.locator(".cm-content").click()
        page.keyboard.press("Control+Enter")
        # Never a hang: the cell says at once that the learner waits, and where.
        expect(figure.locator(".cell-error")).to_contain_text("вы 1-й в очереди", timeout=60_000)
        card = page.locator(".sb-card[data-broker=nats]")
        expect(card).to_have_attribute("data-state", "queued")
        expect(card.locator(".sb-state-text")).to_have_text("ждёт места")
        expect(card.locator(".sb-stage")).to_contain_text(re.compile(r"вы 1-й в очереди, ждать около \d+ мин"))
        card.scroll_into_view_if_needed()
        page.screenshot(path=str(screenshots / "admission-queue.png"))
        # The other learner stops: this page moves on to the broker starting, then ready, by itself.
        actions.sandbox_stop(user_id=other.pk, broker="nats")
        expect(card).to_have_attribute("data-state", re.compile("requested|provisioning|ready"), timeout=START_S * 1000)
        expect(card).to_have_attribute("data-state", "ready", timeout=START_S * 1000)
        expect(card.locator(".sb-stage")).to_be_hidden()
        actions.sandbox_stop(user_id=learner.pk, broker="nats")
        wait_for(
            lambda: not Sandbox.objects.filter(state__in=(State.STOPPING,)).exists(),
            timeout=60,
            what="the units stopped",
        )
    assert Sandbox.objects.get(pk=taken.pk).state == State.STOPPED
    assert page_errors == []
