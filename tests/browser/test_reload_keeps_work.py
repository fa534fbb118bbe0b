"""A reload loses nothing: cell outputs with their badges, and each chapter's panel as the learner left it.

Two tabs of one learner on the bundled course: chapter 6.1 runs a RabbitMQ cell, chapter
6.2 (Kafka only) a Kafka cell. The Kafka chapter's panel shows Kafka's messages only until
"all brokers" is chosen; a cleared panel stays cleared after a reload although the agent
sends its recent events again, and new messages still appear; scope, filter and pause
come back as they were.
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COURSE = Path(__file__).resolve().parents[2] / "lessons" / "content" / "broker-academy"
RABBIT_CHAPTER = "/courses/broker-academy/queues-streaming-event-driven/"
KAFKA_CHAPTER = "/courses/broker-academy/apache-kafka/"
RABBIT_CELL = "figure.cell[data-cell=rabbit-publish-tasks]"
KAFKA_CELL = "figure.cell[data-cell=produce-keys]"


def rows(page, broker: str = ""):
    return page.locator(f"[data-messages] li.msg:has(.broker-{broker})" if broker else "[data-messages] li.msg")


def test_outputs_and_each_chapters_panel_survive_a_reload_and_the_panel_shows_the_chapters_brokers(
    celery_worker, live_server_url, page_as, new_page, page_errors, learner, units_cleanup
):
    course_import(directory=COURSE)
    rabbit = page_as(learner, viewport={"width": 1440, "height": 900})
    kafka = rabbit.context.new_page()
    kafka.on("pageerror", lambda e: page_errors.append(f"pageerror: {e}"))
    kafka.on("console", lambda m: page_errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)

    # Both cells started together: the two brokers come up side by side.
    rabbit.goto(live_server_url + RABBIT_CHAPTER)
    rabbit.locator(f"{RABBIT_CELL} .cell-run").click()
    kafka.goto(live_server_url + KAFKA_CHAPTER)
    kafka.locator(f"{KAFKA_CELL} .cell-run").click()
    expect(rabbit.locator(f"{RABBIT_CELL} .cell-output")).to_contain_text("Сообщений в очереди images.resize: 6", timeout=150_000)
    expect(rabbit.locator(f"{RABBIT_CELL} .exit-badge")).to_have_class(re.compile("exit-ok"))
    expect(kafka.locator(f"{KAFKA_CELL} .exit-badge")).to_have_class(re.compile("exit-ok"), timeout=150_000)

    # The Kafka chapter's panel: Kafka's nine orders, RabbitMQ's six tasks hidden but offered.
    expect(rows(rabbit, "rabbitmq")).to_have_count(6, timeout=30_000)
    expect(rows(kafka, "kafka")).to_have_count(9, timeout=30_000)
    expect(kafka.locator(".msg-other")).to_have_text(re.compile("ещё 6 от других брокеров"))
    expect(rows(kafka, "rabbitmq")).to_have_count(0)
    kafka.locator(".msg-scope").select_option(label="все брокеры")
    expect(rows(kafka, "rabbitmq")).to_have_count(6)
    expect(rows(kafka)).to_have_count(15)
    kafka.locator(".msg-dir-filter").select_option("produced")
    kafka.locator(".msg-pause").click()

    # The output and its badge come back after a reload.
    rabbit.reload()
    expect(rabbit.locator(f"{RABBIT_CELL} .cell-output")).to_contain_text("Сообщений в очереди images.resize: 6")
    expect(rabbit.locator(f"{RABBIT_CELL} .exit-badge")).to_have_class(re.compile("exit-ok"))
    expect(rabbit.locator(f"{RABBIT_CELL} .exit-when")).to_contain_text("прошлый запуск")

    # Cleared stays cleared: the agent's replay after the reload is not shown, new messages are.
    expect(rows(rabbit, "rabbitmq")).to_have_count(6, timeout=30_000)
    rabbit.locator(".msg-clear").click()
    expect(rows(rabbit)).to_have_count(0)
    rabbit.reload()
    expect(rabbit.locator("[data-live-indicator]")).to_have_attribute("data-status", "open", timeout=30_000)
    rabbit.locator(f"{RABBIT_CELL} .cell-run").click()
    expect(rabbit.locator(f"{RABBIT_CELL} .cell-output")).to_contain_text("Сообщений в очереди images.resize: 12", timeout=60_000)
    # Only the six new tasks: not the fifteen (tasks and orders) that were cleared and sent again.
    expect(rows(rabbit)).to_have_count(6, timeout=30_000)
    expect(rabbit.locator(".msg-count")).to_have_text("6 сообщений")

    # The Kafka chapter comes back with all brokers, sent messages only, paused: what was on
    # screen before the pause is shown, the six tasks sent since are counted as new.
    kafka.reload()
    expect(kafka.locator(".msg-scope")).to_have_value("all")
    expect(kafka.locator(".msg-dir-filter")).to_have_value("produced")
    expect(kafka.locator(".msg-pause")).to_have_attribute("aria-pressed", "true")
    expect(rows(kafka)).to_have_count(15, timeout=30_000)
    expect(kafka.locator(".msg-paused")).to_have_text("пауза · 6 новых")
    expect(kafka.locator(f"{KAFKA_CELL} .exit-badge")).to_have_class(re.compile("exit-ok"))
    assert page_errors == []
