"""A learner's mistakes on the bundled course: a wrong port, a check on an empty broker, hints.

One Kafka sandbox serves every step: the learner breaks a cell of chapter 6.2 with
a wrong port and reads the hint naming the variable (and no server path) under
the traceback, presses Check on an exercise and reads a reason that gives no line
of the solution away, then opens the exercise's hints one at a time.
"""

from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from lessons.checks import reason_leaks
from lessons.course_io import course_folder_read, course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COURSE = Path(settings.COURSE_DIRS[0])
CHAPTER = "6-2-apache-kafka.md"
CELL = "cluster-describe"
EXERCISE = "orders-topic"
SERVER_PATHS = ("/root/", ".venv", "site-packages", "/usr/lib/python")


def test_a_wrong_port_gets_a_hint_a_failed_check_keeps_the_answer_and_hints_open_one_by_one(
    celery_worker, live_server_url, page_as, page_errors, learner, units_cleanup, screenshots
):
    course = course_import(directory=COURSE)
    _source, parsed = course_folder_read(directory=COURSE).chapters[CHAPTER]
    cells = {c.key: c for c in parsed.cells}
    original = cells[CELL].code
    assert 'os.environ["BOOTSTRAP_SERVERS"]' in original.splitlines()[3]
    page = page_as(learner, viewport={"width": 1440, "height": 900})
    page.goto(f"{live_server_url}/courses/{course.slug}/{parsed.meta['slug']}/")

    # The learner writes the address in by hand, with a port nothing listens on, and runs the cell.
    figure = page.locator(f"figure.cell[data-cell={CELL}]")
    figure.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(original.replace('os.environ["BOOTSTRAP_SERVERS"]', '"localhost:9999"'))
    page.keyboard.press("Control+Enter")
    hint = figure.locator(".cell-hint")
    expect(hint).to_contain_text("BOOTSTRAP_SERVERS", timeout=180_000)
    expect(hint).to_contain_text("брокер не отвечает")
    output = figure.locator(".cell-output")
    # kafka-python 3 gives up after bootstrap_timeout_ms (30 s), within the cell's 60 s.
    expect(output).to_contain_text("Unable to bootstrap from localhost:9999")
    expect(output).to_contain_text("frames inside kafka-python")
    text = output.inner_text()
    for path in SERVER_PATHS:
        assert path not in text, f"{path!r} shown to the learner:\n{text}"
    figure.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "cell-error-hint.png"))
    # The traceback's line number still leads to the line in the editor.
    line = output.locator("button.tb-line", has_text="4")
    expect(line).to_have_count(1)
    line.click()
    expect(figure.locator(".cm-activeLine")).to_contain_text('KafkaAdminClient(bootstrap_servers="localhost:9999")')

    # Check on the empty broker: the reason says what is missing, not how to write it.
    exercise = page.locator(f"section#exercise-{EXERCISE}")
    exercise.locator(".check-button").click()
    reason = exercise.locator(".check-verdict.is-fail .check-reason")
    expect(reason).to_contain_text("orders", timeout=120_000)
    solution = next(c for c in parsed.cells if c.exercise == EXERCISE and c.role == "solution").code
    shown = reason.inner_text()
    assert reason_leaks(shown, solution) is None, f"the reason gives the solution away: {shown}"

    # Hints: all closed; each click opens the next one, and only that one.
    hints = exercise.locator(".hint")
    total = hints.count()
    assert total == 3
    button = exercise.locator(".hint-button")
    for opened in range(total):
        for i in range(total):
            if i < opened:
                expect(hints.nth(i)).to_be_visible()
            else:
                expect(hints.nth(i)).to_be_hidden()
        expect(button).to_have_text(
            f"Показать подсказку (1 из {total})" if opened == 0 else f"Следующая подсказка ({opened + 1} из {total})"
        )
        button.click()
    for i in range(total):
        expect(hints.nth(i)).to_be_visible()
    expect(button).to_have_count(0)
    assert page_errors == []
