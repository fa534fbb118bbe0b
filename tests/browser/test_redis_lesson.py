"""Redis Streams as a learner meets it: a chapter on the fifth broker, Shift+Enter, messages and the topology.

The chapter is a course of its own made for the test (nothing in lessons/ or the
bundled course names redis): its cell adds orders to a stream and reads them as a
consumer group; the panel shows both directions and "the broker from inside" shows
the stream with its group.
"""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from lessons.course_io import course_import
from tests.sandboxes.test_redis_live import CELL, CHAPTER, COURSE

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_redis_chapter_runs_a_cell_and_shows_its_stream_and_group(
    celery_worker, live_server_url, page_as, page_errors, learner, units_cleanup, screenshots, tmp_path: Path
):
    (tmp_path / "course.md").write_text(COURSE)
    (tmp_path / "1-streams.md").write_text(CHAPTER)
    course_import(directory=tmp_path)
    page = page_as(learner, viewport={"width": 1440, "height": 900})
    page.goto(live_server_url + "/courses/redis-course/streams/")
    expect(page.locator(".chapter-header .badge.broker-redis")).to_have_text("Redis Streams")
    editor = page.locator("figure.cell[data-cell=on-redis] .cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(CELL.strip() + "\n")
    page.keyboard.press("Shift+Enter")
    expect(page.locator("figure.cell[data-cell=on-redis] .cell-output")).to_contain_text("consumed 3", timeout=120_000)
    expect(page.locator("[data-messages] li.msg-produced")).to_have_count(3, timeout=30_000)
    expect(page.locator("[data-messages] li.msg-consumed")).to_have_count(3, timeout=30_000)
    expect(page.locator("[data-messages] li.msg-consumed").first).to_contain_text("billing")
    expect(page.locator(".msg-scope option[value=chapter]")).to_have_text("брокеры главы: Redis")
    stream = page.locator(".redis-stream[data-name=orders]")
    expect(stream).to_contain_text("3 записей", timeout=30_000)
    group = stream.locator("tr[data-group=billing]")
    expect(group.locator(".pending")).to_have_text("0")
    expect(group).to_contain_text("worker-1")
    page.screenshot(path=str(screenshots / "live-redis-streams.png"))
    assert page_errors == []
