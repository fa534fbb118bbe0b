"""The terminal panel, used as a learner uses it, on the bundled course (chapter 6.3, Kafka).

A cell creates a topic; the learner opens the Kafka terminal beside the chapter, types
``kafka-topics.sh --list`` (no flags: the sandbox's broker is the default) and reads the
topic on the screen; after a reload the terminal reopens with its scrollback, the
earlier command and its answer still there, and the same shell answers the next one;
a narrow window (the panel becomes a full-width sheet) gives the shell more columns;
a word copied from the screen with Ctrl+Shift+C pastes back with Ctrl+V.
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COURSE = Path(__file__).resolve().parents[2] / "lessons" / "content" / "broker-academy"
CHAPTER = "/courses/broker-academy/kafka-producer-consumer/"

MAKE_TOPIC = """import os
from kafka.admin import KafkaAdminClient, NewTopic

admin = KafkaAdminClient(bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"])
admin.create_topics([NewTopic("terminal-orders", num_partitions=1, replication_factor=1)])
print("создан", sorted(t for t in admin.list_topics() if t.startswith("terminal")))
"""


def _run(page, cell, code, *, expect_text, timeout=180_000):
    editor = page.locator(f"figure.cell[data-cell={cell}] .cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    expect(page.locator(f"figure.cell[data-cell={cell}] .cell-output")).to_contain_text(expect_text, timeout=timeout)


def test_a_learner_lists_the_topic_of_their_cell_in_the_terminal_and_keeps_it_after_a_reload(
    celery_worker, live_server_url, page_as, page_errors, learner, units_cleanup, screenshots
):
    course_import(directory=COURSE)
    page = page_as(learner, viewport={"width": 1440, "height": 900}, permissions=["clipboard-read", "clipboard-write"])
    page.goto(live_server_url + CHAPTER)
    _run(page, "produce-orders", MAKE_TOPIC, expect_text="создан ['terminal-orders']")

    panel = page.locator("[data-terminal-panel]")
    panel.get_by_role("button", name="Терминал Kafka").click()
    screen = panel.locator("[data-terminal-screen] .xterm-rows")
    expect(screen).to_contain_text("sandbox:", timeout=30_000)  # the shell's prompt
    panel.locator("[data-terminal-screen]").click()
    page.keyboard.type("kafka-topics.sh --list\n")
    expect(screen).to_contain_text("terminal-orders", timeout=60_000)
    expect(screen).to_contain_text("webshop-orders")  # the chapter's setup cell made it: the same broker
    page.screenshot(path=str(screenshots / "terminal-kafka-topics.png"))

    # Copy and paste: a double click selects the topic's name, Ctrl+Shift+C copies it, Ctrl+V types it.
    row = screen.locator("div", has_text=re.compile(r"^terminal-orders$")).bounding_box()
    assert row is not None
    page.mouse.dblclick(row["x"] + 12, row["y"] + row["height"] / 2)  # the rows let the screen take the mouse
    page.keyboard.press("Control+Shift+C")
    assert page.evaluate("navigator.clipboard.readText()") == "terminal-orders"
    page.keyboard.press("Control+V")
    page.keyboard.press("Enter")
    expect(screen).to_contain_text("terminal-orders: command not found", timeout=15_000)

    page.reload()
    screen = page.locator("[data-terminal-panel] [data-terminal-screen] .xterm-rows")
    # Reopened by itself, attached to the same shell: the earlier command and its answer come back first.
    expect(screen).to_contain_text("kafka-topics.sh --list", timeout=30_000)
    expect(screen).to_contain_text("terminal-orders")
    page.locator("[data-terminal-panel] [data-terminal-screen]").click()
    page.keyboard.type("echo still-$((6*7))\n")
    expect(screen).to_contain_text("still-42", timeout=15_000)

    # A narrow window turns the panel into a full-width bottom sheet: opened, the terminal has refitted
    # and the shell has learnt its new width.
    page.keyboard.type("echo before=$(tput cols)\n")
    expect(screen).to_contain_text(re.compile(r"before=\d+"), timeout=15_000)
    before = int(re.findall(r"before=(\d+)", screen.inner_text())[-1])
    page.set_viewport_size({"width": 900, "height": 900})
    page.locator(".live-panel .sheet-handle").click()
    page.locator("[data-terminal-panel] [data-terminal-screen]").click()
    page.keyboard.type("echo after=$(tput cols)\n")
    expect(screen).to_contain_text(re.compile(r"after=\d+"), timeout=15_000)
    after = int(re.findall(r"after=(\d+)", screen.inner_text())[-1])
    assert after > before + 10, (before, after)
    assert page_errors == []


def test_a_terminal_of_a_broker_not_yet_started_says_it_is_starting_and_runs_the_chapters_commands_when_ready(
    celery_worker, live_server_url, page_as, page_errors, learner, units_cleanup
):
    """6.1's JetStream section: "▶ in the NATS terminal" under its command block, pressed before the
    sandbox exists, opens the terminal, says it is starting and types the commands once the shell is
    there; after the chapter's cell has made the stream, the same button shows it; Copy copies them."""
    course_import(directory=COURSE)
    page = page_as(learner, viewport={"width": 1440, "height": 900}, permissions=["clipboard-read", "clipboard-write"])
    page.goto(live_server_url + "/courses/broker-academy/queues-streaming-event-driven/")
    block = page.locator("[data-terminal-command]", has_text="nats consumer ls ORDERS")  # the section's, not the exercise's
    run = block.get_by_role("button", name="▶ В терминале NATS")
    run.click()
    screen = page.locator("[data-terminal-panel] [data-terminal-screen] .xterm-rows")
    # The page starts the sandbox itself, so it says so (not "start it, then open the terminal").
    expect(screen).to_contain_text("Песочница запускается", timeout=30_000)
    expect(screen).not_to_contain_text("Запустите её")
    expect(screen).to_contain_text("sandbox:", timeout=120_000)  # attached once the sandbox is ready
    # The block's commands were typed into the shell and answered: no stream yet, so no ORDERS consumers.
    expect(screen).to_contain_text("nats consumer ls ORDERS", timeout=30_000)
    expect(screen).to_contain_text("No Streams defined", timeout=30_000)
    expect(screen).to_contain_text("no Streams are defined", timeout=30_000)

    # The chapter's cell makes the stream; the same button then shows it and its consumers' table.
    page.locator("figure.cell[data-cell=jetstream-publish] .cell-run").click()
    expect(page.locator("figure.cell[data-cell=jetstream-publish] .cell-output")).to_contain_text(
        "В потоке ORDERS сообщений: 5", timeout=120_000
    )
    run.click()
    expect(screen).to_contain_text(re.compile(r"│ ORDERS\s+│"), timeout=30_000)
    expect(screen).to_contain_text("No Consumers defined")

    block.get_by_role("button", name="Копировать").click()
    expect(block.get_by_role("button", name="Скопировано")).to_be_visible()  # the page's copy button of code blocks
    assert page.evaluate("navigator.clipboard.readText()").strip() == "nats stream ls\nnats consumer ls ORDERS"
    assert page_errors == []
