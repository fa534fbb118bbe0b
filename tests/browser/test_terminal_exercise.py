"""Exercises done in the terminal, as a learner does them, on the bundled course.

6.1's returns queue shows its starter commands with "▶ В терминале NATS" and its check button
under them; the learner opens the NATS terminal, presses the check and reads why it fails
(in the broker's terms, not the commands), types the commands with the `nats` CLI, presses
the check again and sees it pass: the check read the stream and consumer the terminal made.
6.3's refund audit is Kafka's: a topic made with `kafka-topics.sh` and a group's offsets set
with `kafka-consumer-groups.sh`; a reset to the wrong end is refused with what the service
would skip, and the check reads the group's committed offsets from the broker.
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COURSE = Path(__file__).resolve().parents[2] / "lessons" / "content" / "broker-academy"
CHAPTER = "/courses/broker-academy/queues-streaming-event-driven/"
KAFKA_CHAPTER = "/courses/broker-academy/kafka-producer-consumer/"
COMMANDS = (
    "nats stream add RETURNS --subjects 'returns.>' --retention work --defaults",
    "nats consumer add RETURNS refunds --pull --ack explicit --max-deliver 3 --defaults",
    "nats pub returns.requested '{\"order_id\": 7}'",
)


def exercise_with_terminal(page, url: str, exercise_id: str, terminal: str, *, timeout: float):
    """The chapter at ``url`` open, its exercise done in the terminal checked as the page shows it
    (starter commands with their button, no cell, the solution folded), and the ``terminal``
    ("NATS", "Kafka") opened beside it. Returns the exercise, the terminal panel and its screen."""
    page.goto(url)
    exercise = page.locator(f"section#exercise-{exercise_id}")
    starter = exercise.locator("[data-terminal-command][data-role=starter]")
    expect(starter.get_by_role("button", name=f"▶ В терминале {terminal}")).to_be_visible()
    # The check button stands under the starter commands, not under a cell: there is none to run.
    expect(exercise.locator("figure.cell")).to_have_count(0)
    # The solution is folded, with the same buttons once opened.
    expect(exercise.locator("details.solution [data-terminal-command]")).to_be_hidden()
    panel = page.locator("[data-terminal-panel]")
    panel.get_by_role("button", name=f"Терминал {terminal}").click()
    screen = panel.locator("[data-terminal-screen] .xterm-rows")
    expect(screen).to_contain_text("sandbox:", timeout=timeout)
    return exercise, panel, screen


def passes(page, exercise, screenshot: Path) -> None:
    """The check pressed again accepts the exercise, and the page marks it passed."""
    exercise.locator(".check-button").click()
    expect(exercise.locator(".check-verdict")).to_contain_text("Принято!", timeout=60_000)
    expect(exercise).to_have_class(re.compile(r"\bis-passed\b"))
    exercise.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot))


def test_a_learner_builds_the_returns_queue_in_the_terminal_and_the_check_reads_it_from_the_broker(
    celery_worker, live_server_url, page_as, page_errors, learner, units_cleanup, screenshots
):
    course_import(directory=COURSE)
    page = page_as(learner, viewport={"width": 1440, "height": 900})
    exercise, panel, screen = exercise_with_terminal(page, live_server_url + CHAPTER, "returns-queue", "NATS", timeout=120_000)
    expect(exercise.locator("[data-role=starter] + .exercise-check .check-button")).to_be_visible()

    # Checking starts no sandbox but the exercise's own (before: every broker of the chapter, up to the quota).
    expect(page.locator(".sb-card[data-broker=nats]")).to_have_attribute("data-state", "ready")
    check = exercise.locator(".check-button")
    verdict = exercise.locator(".check-verdict")
    check.click()
    expect(verdict).to_contain_text("Пока не получилось", timeout=60_000)
    expect(verdict).to_contain_text("Потока RETURNS в JetStream нет")
    assert "nats " not in verdict.inner_text() and "--" not in verdict.inner_text()
    for other in ("kafka", "rabbitmq", "activemq", "redis"):
        expect(page.locator(f".sb-card[data-broker={other}]")).to_have_attribute("data-state", "none")
    exercise.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "terminal-exercise-before.png"))

    panel.locator("[data-terminal-screen]").click()
    for command in COMMANDS:
        page.keyboard.type(command + "\n")
    expect(screen).to_contain_text('Published 15 bytes to "returns.requested"', timeout=60_000)

    passes(page, exercise, screenshots / "terminal-exercise-passed.png")
    assert page_errors == []


def test_a_learner_sets_a_new_groups_offsets_in_the_kafka_terminal_and_the_check_reads_them_from_the_broker(
    celery_worker, live_server_url, page_as, page_errors, learner, units_cleanup, screenshots
):
    course_import(directory=COURSE)
    page = page_as(learner, viewport={"width": 1440, "height": 900})
    exercise, panel, screen = exercise_with_terminal(
        page, live_server_url + KAFKA_CHAPTER, "refund-audit-history", "Kafka", timeout=180_000
    )
    check = exercise.locator(".check-button")
    verdict = exercise.locator(".check-verdict")
    check.click()  # the chapter's setup runs first: its topics, none of them the exercise's
    expect(verdict).to_contain_text("Пока не получилось", timeout=120_000)
    expect(verdict).to_contain_text("Топика refund-requests в брокере нет")

    # The topic and its requests are right, but the group is put at the end: the service would skip them all.
    panel.locator("[data-terminal-screen]").click()
    for command in (
        "kafka-topics.sh --create --topic refund-requests --partitions 3 --config retention.ms=2592000000",
        "printf 'order-1\\norder-2\\norder-3\\n' | kafka-console-producer.sh --topic refund-requests",
        "kafka-consumer-groups.sh --group refund-audit --topic refund-requests --reset-offsets --to-latest --execute",
    ):
        page.keyboard.type(command + "\n")
    expect(screen).to_contain_text("NEW-OFFSET", timeout=120_000)
    check.click()
    skipped = re.compile(r"группа refund-audit закоммитила [1-3], так что при первом старте сервис пропустит заявок: [1-3]")
    expect(verdict).to_contain_text(skipped, timeout=60_000)
    assert "kafka-" not in verdict.inner_text() and "--" not in verdict.inner_text()
    exercise.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "kafka-terminal-exercise-wrong-end.png"))

    panel.locator("[data-terminal-screen]").click()
    page.keyboard.type("clear\n")
    expect(screen).not_to_contain_text("NEW-OFFSET")
    page.keyboard.type(
        "kafka-consumer-groups.sh --group refund-audit --topic refund-requests --reset-offsets --to-earliest --execute\n"
    )
    expect(screen).to_contain_text("NEW-OFFSET", timeout=60_000)
    passes(page, exercise, screenshots / "kafka-terminal-exercise-passed.png")
    assert page_errors == []
