"""The moment the product exists for: Shift+Enter on a Kafka producer cell, and the messages appear."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"
PRODUCER = """import json, os
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"])
for n in range(5):
    producer.send("orders", key=f"order-{n}".encode(), value=json.dumps({"order": n, "sum": 100 + n}).encode())
producer.flush()
print("sent 5 orders")
"""


def test_shift_enter_runs_a_kafka_producer_and_its_messages_appear_in_the_panel(
    celery_worker, live_server_url, page_as, page_errors, learner, units_cleanup, screenshots
):
    course_import(directory=MINI)
    page = page_as(learner, viewport={"width": 1440, "height": 900})
    page.goto(live_server_url + "/courses/mini/live/")
    editor = page.locator("figure.cell[data-cell=on-kafka] .cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(PRODUCER)
    page.keyboard.press("Shift+Enter")
    output = page.locator("figure.cell[data-cell=on-kafka] .cell-output")
    expect(output).to_contain_text("sent 5 orders", timeout=120_000)
    rows = page.locator("[data-messages] li.msg-produced")
    expect(rows).to_have_count(5, timeout=30_000)
    expect(rows.first).to_contain_text("orders")
    expect(page.locator("[data-messages]")).to_contain_text("order-4")
    page.screenshot(path=str(screenshots / "live-kafka-producer.png"))
    # The draft was saved: a reload shows the learner's code, not the original.
    page.wait_for_timeout(1500)
    page.reload()
    expect(page.locator("figure.cell[data-cell=on-kafka] .cm-content")).to_contain_text("sent 5 orders")
    assert page_errors == []
