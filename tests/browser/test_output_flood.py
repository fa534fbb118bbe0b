"""A cell that prints as fast as it can: the page answers clicks, and shows the head, a count and the real end.

Chapter 6.1 of the bundled course, its NATS cell (the quickest broker to start): the
learner replaces the code with a printing loop and runs it, and while it floods,
clicks other cells' editors. The time from each click to the next frame is measured
in the page (from the event's own timestamp, so time spent waiting for a busy main
thread counts); the median must stay under 200 ms.
"""

import re
import statistics
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COURSE = Path(__file__).resolve().parents[2] / "lessons" / "content" / "broker-academy"
CHAPTER = "/courses/broker-academy/queues-streaming-event-driven/"
FLOOD = "i = 0\nwhile True:\n    print(i)\n    i += 1\n"
ENDS = "for i in range(300_000):\n    print(i)\nprint('последняя строка')\n"
HEAD_LINES = 500  # sandboxes/agent/output.py
CLICKS = 5

# In the page: for each click, the time from the event's timestamp (when the browser got the
# input) to just after the next frame, and whether the flood was still running then.
MEASURE = """() => {
  window.__reactions = [];
  document.addEventListener("click", (event) => {
    const started = event.timeStamp;
    requestAnimationFrame(() => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => window.__reactions.push({
        ms: performance.now() - started,
        flooding: document.querySelector("figure[data-cell=nats-pubsub]").classList.contains("is-running"),
      });
      channel.port2.postMessage(0);
    });
  }, true);
}"""


def type_code(page, cell: str, code: str) -> None:
    page.locator(f"figure.cell[data-cell={cell}] .cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(code)


def test_a_printing_loop_leaves_the_page_responsive_and_shows_head_count_and_end(
    celery_worker, live_server_url, page_as, page_errors, learner, units_cleanup, screenshots
):
    course_import(directory=COURSE)
    page = page_as(learner, viewport={"width": 1440, "height": 900})
    page.goto(live_server_url + CHAPTER)
    page.evaluate(MEASURE)
    cell = page.locator("figure.cell[data-cell=nats-pubsub]")
    head = cell.locator(".cell-stream:not(.cell-tail)")
    gap = cell.locator(".cell-gap")
    tail = cell.locator(".cell-tail")
    badge = cell.locator(".exit-badge")

    # A loop that never ends by itself: the agent stops it at its output (or time) limit.
    type_code(page, "nats-pubsub", FLOOD)
    page.keyboard.press("Control+Enter")
    expect(head).to_contain_text("\n399\n", timeout=120_000)

    # Clicks into other cells' editors while it floods: each must get its frame quickly.
    page.evaluate("window.__reactions = []")
    others = [page.locator(f"figure.cell[data-cell={key}] .cm-editor") for key in ("rabbit-publish-tasks", "rabbit-worker")]
    for n in range(CLICKS):
        others[n % 2].locator(".cm-content").click()
        page.wait_for_function("n => window.__reactions.length >= n", arg=n + 1)
        expect(others[n % 2]).to_have_class(re.compile("cm-focused"))
    reactions = page.evaluate("window.__reactions")
    during = [r["ms"] for r in reactions if r["flooding"]]
    assert len(during) >= 3, f"the flood ended before the clicks: {reactions}"
    median = statistics.median(during)
    print(f"\nclick to next frame during the flood: median {median:.0f} ms of {[round(ms) for ms in during]}")
    assert median < 200, reactions

    # The moment on screen: the end of the head, the count, the tail moving below.
    expect(gap).to_be_visible()
    gap.evaluate("node => node.scrollIntoView({block: 'center'})")
    cell.evaluate("node => window.scrollTo(0, node.getBoundingClientRect().top + window.scrollY - 80)")  # below the sticky header
    page.screenshot(path=str(screenshots / "output-flood.png"))

    expect(badge).to_have_class(re.compile("exit-(output|timeout)"), timeout=60_000)
    expect(badge).to_have_text(re.compile("лимит вывода|время вышло"))
    assert head.inner_text().startswith("0\n1\n2\n")
    assert head.inner_text().splitlines()[-1] == str(HEAD_LINES - 1)
    hidden = int(re.sub(r"\D", "", gap.inner_text()))
    lines = tail.inner_text().splitlines()
    # The tail is the real end: whole numbers one after another, right after the ones not shown
    # (the very last line may be cut where the process was stopped).
    numbers = [int(line) for line in lines[:-1]]
    assert numbers[0] == HEAD_LINES + hidden
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert str(numbers[-1] + 1).startswith(lines[-1])
    assert re.fullmatch(r"… [\d\s]+ строк[аи]? не показан[аоы]? …", gap.inner_text()), gap.inner_text()

    # A flood that ends by itself: its last line is on screen, and the count is exact.
    type_code(page, "nats-pubsub", ENDS)
    page.keyboard.press("Control+Enter")
    expect(badge).to_have_class(re.compile("exit-ok"), timeout=60_000)
    lines = tail.inner_text().splitlines()
    assert lines[-1] == "последняя строка"
    hidden = int(re.sub(r"\D", "", gap.inner_text()))
    assert HEAD_LINES + hidden + len(lines) == 300_001
    assert int(lines[-2]) == 299_999
    assert page_errors == []
