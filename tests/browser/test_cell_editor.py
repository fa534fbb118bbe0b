"""A cell's code editor on the bundled course as a learner meets it: the line being typed into starts beside
the line numbers, not under them."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BUNDLED = Path(__file__).resolve().parents[2] / "lessons" / "content" / "broker-academy"
CHAPTER = "/courses/broker-academy/queues-streaming-event-driven/"  # 6.1
# Its code is wider than the editor at this viewport, so the editor scrolls sideways.
CELL = "figure.cell[data-cell=kafka-keyed-partitions]"
LINE = "admin.close()"
TYPED = "  # the topic is there"

# Where the first character of the line holding the cursor starts, and where the line numbers end.
FIRST_CHARACTER_AND_GUTTER = """(figure) => {
  const line = figure.querySelector(".cm-activeLine");
  const text = document.createTreeWalker(line, NodeFilter.SHOW_TEXT).nextNode();
  const range = document.createRange();
  range.setStart(text, 0);
  range.setEnd(text, 1);
  const gutter = figure.querySelector(".cm-gutters").getBoundingClientRect();
  return { character: text.textContent[0], left: range.getBoundingClientRect().left, gutterRight: gutter.right };
}"""


def test_the_line_a_learner_types_into_starts_beside_the_line_numbers_not_under_them(
    live_server_url, page_as, page_errors, learner, screenshots
):
    course_import(directory=BUNDLED)
    page = page_as(learner, viewport={"width": 1280, "height": 900})
    page.goto(live_server_url + CHAPTER)
    figure = page.locator(CELL)
    expect(figure.locator(".cm-content")).to_be_visible()
    scroller = figure.locator(".cm-scroller")
    assert scroller.evaluate("(s) => s.scrollWidth > s.clientWidth"), "the cell's code no longer overflows its editor"

    # A click on the line brings it into view first (as a phone does for a tap that focuses the editor),
    # lands past its end, and the learner types a comment there.
    figure.locator(".cm-line", has_text=LINE).click()
    page.keyboard.type(TYPED)
    expect(figure.locator(".cm-activeLine")).to_have_text(LINE + TYPED)

    seen = figure.evaluate(FIRST_CHARACTER_AND_GUTTER)
    figure.screenshot(path=str(screenshots / "cell-editor-typed-line.png"))
    assert seen["character"] == "a"
    assert seen["left"] >= seen["gutterRight"], seen
    assert page_errors == []
