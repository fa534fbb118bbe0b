"""Chapter 6.2's cluster, read off the panel as a learner reads it: a broker stopped with its card's
button leaves every ISR, and started again it comes back into them.

The learner runs the chapter's first cluster cell (a topic with three replicas), opens the
"Кластер Kafka" tab, presses "Остановить" on broker 3 and sees its card go down and 3 leave the
partition's ISR; "Запустить" brings both back. One page, one cluster sandbox. The records the
chapter's next cell writes show in the message panel as the cluster's (its kind's dot and name), each
with the node it came from: the leader of its partition, as the first cell printed it.
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lessons.course_io import course_import
from tests.browser.test_topology import _open, _run

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COURSE = Path(__file__).resolve().parents[2] / "lessons" / "content" / "broker-academy"


def test_a_broker_stopped_and_started_from_the_panel_leaves_and_rejoins_the_isr(
    celery_worker, live_server_url, page_as, page_errors, learner, units_cleanup, screenshots
):
    course_import(directory=COURSE)
    page = _open(page_as, live_server_url, learner, "/courses/broker-academy/apache-kafka/")
    _run(page, "cluster-topic", expect_text="Партиция 0: лидер", timeout=240_000)
    output = page.locator("figure.cell[data-cell=cluster-topic] .cell-output")
    expect(output).to_contain_text("Партиция 2: лидер", timeout=30_000)  # the three lines, not only the first
    printed = output.inner_text()
    leaders = {int(p): int(n) for p, n in re.findall(r"Партиция (\d): лидер (\d)", printed)}
    assert sorted(leaders) == [0, 1, 2], printed

    # Each record in the panel: the cluster's, from its partition's leader (a chip and the row's title).
    _run(page, "cluster-produce", expect_text="Все 3 записи с acks=all приняты", timeout=150_000)
    for partition, leader in leaders.items():
        row = page.locator(
            "[data-live-panel] li.msg-produced", has=page.locator(".msg-pos", has_text=re.compile(f"^p{partition}$"))
        )
        row = row.filter(has_text="payments-replicated").first
        expect(row.locator(".msg-broker")).to_have_class(re.compile(r"\bbroker-kafka-cluster\b"), timeout=30_000)
        expect(row.locator(".chip-node")).to_have_text(f"Kafka ×3 · брокер {leader}")
        expect(row).to_have_attribute("title", f"Kafka ×3 · брокер {leader}")
    page.screenshot(path=str(screenshots / "panel-kafka-cluster-events-by-node.png"))
    # A run starts only the cell's sandbox: the cluster's is the one shown (tabs appear, and the learner
    # picks the cluster's, only once another sandbox of the chapter shows itself too).
    tab = page.locator(".topo-tab.broker-kafka-cluster")
    expect(tab).to_have_attribute("aria-selected", "true", timeout=60_000)
    if tab.is_visible():
        tab.click()
    body = page.locator("[data-topology] .topo-body")
    card = body.locator('.cluster-broker[data-node="3"]')
    isr = body.locator('.topo-card[data-topic="payments-replicated"] tr[data-partition="0"] td.isr')
    expect(isr).to_have_text("1, 2, 3", timeout=30_000)
    expect(card).to_have_attribute("data-state", "up")

    card.locator("button.node-stop").click()
    expect(card).to_have_attribute("data-state", "down", timeout=60_000)
    expect(isr).to_have_text("1, 2", timeout=30_000)
    expect(body.locator('.topo-card[data-topic="payments-replicated"] tr[data-partition="0"] .replica-out')).to_have_text("3")
    page.screenshot(path=str(screenshots / "topology-kafka-cluster-broker-down.png"))

    card.locator("button.node-start").click()
    expect(card).to_have_attribute("data-state", "up", timeout=90_000)
    expect(isr).to_have_text("1, 2, 3", timeout=90_000)
    assert page_errors == []
