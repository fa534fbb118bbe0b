"""The disk door as a learner meets it: a producer that keeps everything fills the sandbox's capped
disk, and the page says why under the cell (tests/security/test_disk_cap.py proves the cap itself)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from lessons.course_io import course_folder_read, course_import
from tests.security.test_disk_cap import KAFKA_FILL, MB, OVERSHOOT

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_learner_reads_on_the_page_why_their_producer_is_refused(
    celery_worker,
    live_server_url,
    page_as,
    page_errors,
    learner,
    units_cleanup,
    screenshots,
):
    """On chapter 6.2 of the bundled course a learner turns a cell into a producer that keeps everything."""
    folder = Path(settings.COURSE_DIRS[0])
    course = course_import(directory=folder)
    _source, chapter = course_folder_read(directory=folder).chapters["6-2-apache-kafka.md"]
    page = page_as(learner, viewport={"width": 1440, "height": 900})
    page.goto(f"{live_server_url}/courses/{course.slug}/{chapter.meta['slug']}/")
    figure = page.locator("figure.cell[data-cell=cluster-describe]")
    figure.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(KAFKA_FILL.format(limit=OVERSHOOT * settings.SANDBOX_DISK_MB["kafka"] * MB).strip())
    page.keyboard.press("Control+Enter")
    hint = figure.locator(".cell-hint")
    expect(hint).to_contain_text("Диск песочницы заполнен", timeout=180_000)
    expect(hint).to_contain_text(re.compile(r"хранит \d+ МБ из \d+ МБ"))  # the filesystem's own size, a little under the cap
    # The acknowledgement in flight when the log directory fails is refused (KafkaStorageError), or, when Kafka
    # has already halted on the failed directory, its connection is reset: both are the wall, and the hint says why.
    expect(figure.locator(".cell-output")).to_contain_text(re.compile(r"KafkaStorageError|KafkaConnectionError"))
    figure.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "disk-full-hint.png"))
    assert page_errors == []
