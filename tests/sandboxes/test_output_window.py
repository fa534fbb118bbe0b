"""The head, the count and the tail that a long output becomes (sandboxes/agent/output.py), without a sandbox."""

from __future__ import annotations

import asyncio
import random

from sandboxes.agent.cells import CellRunner
from sandboxes.agent.confinement import CellLimits
from sandboxes.agent.output import OutputWindow


class Page:
    """What static/js/cells.js does with the messages: head as written, then a tail as long as the agent's."""

    def __init__(self, tail_lines: int, tail_chars: int = 32 * 1024) -> None:
        self.head = ""
        self.tail: list[str] = []
        self.tail_lines = tail_lines
        self.tail_chars = tail_chars
        self.hidden = 0
        self.hidden_chars = 0

    def receive(self, message: dict) -> None:
        if not message.get("tail"):
            self.head += message["text"]
            return
        if message.get("skipped") or message.get("skipped_chars"):
            # Lines were left out after what the tail shows: it is older than the gap.
            self.hidden += message.get("skipped", 0) + sum(line.endswith("\n") for line in self.tail)
            self.hidden_chars += message.get("skipped_chars", 0) + sum(map(len, self.tail))
            self.tail = []
        for line in message["text"].splitlines(keepends=True):
            if self.tail and not self.tail[-1].endswith("\n"):
                self.tail[-1] += line
            else:
                self.tail.append(line)
        while len(self.tail) > self.tail_lines:
            self.hidden += 1
            self.hidden_chars += len(self.tail.pop(0))
        while sum(map(len, self.tail)) > self.tail_chars:
            over = sum(map(len, self.tail)) - self.tail_chars
            if len(self.tail) > 1:
                self.hidden += self.tail[0].endswith("\n")
                self.hidden_chars += len(self.tail.pop(0))
            else:
                self.tail[0] = self.tail[0][over:]
                self.hidden_chars += over


def feed(window: OutputWindow, page: Page, data: bytes, *, takes: int) -> None:
    """Give ``data`` to the window in reads of random size, taking messages now and then."""
    rng = random.Random(7)
    position = 0
    while position < len(data):
        size = rng.randint(1, 5000)
        window.add("stdout", data[position : position + size])
        position += size
        if rng.random() < takes / 100:
            for message in window.take():
                page.receive(message)
    window.add("stdout", b"", final=True)
    for message in window.take():
        page.receive(message)


def test_a_flood_shows_its_first_and_last_lines_and_counts_exactly_the_lines_between():
    lines = [f"{n}\n" for n in range(200_000)]
    window = OutputWindow(head_lines=50, tail_lines=30)
    page = Page(tail_lines=30)
    feed(window, page, "".join(lines).encode(), takes=3)
    assert page.head == "".join(lines[:50])
    assert "".join(page.tail) == "".join(lines[-30:])
    assert page.hidden == len(lines) - 80
    assert page.hidden_chars == sum(map(len, lines[50:-30]))
    assert window.cut


def test_output_within_the_head_and_tail_is_shown_whole():
    text = "".join(f"строка {n}\n" for n in range(70))
    window = OutputWindow(head_lines=50, tail_lines=30)
    page = Page(tail_lines=30)
    feed(window, page, text.encode(), takes=50)
    assert page.head + "".join(page.tail) == text
    assert page.hidden == 0 and not window.cut


def test_one_endless_line_is_bounded_and_keeps_its_end():
    window = OutputWindow(head_chars=1000, tail_chars=500)
    page = Page(tail_lines=200, tail_chars=500)
    feed(window, page, b"x" * 300_000 + b"END", takes=2)
    assert len(page.head) == 1000
    assert "".join(page.tail).endswith("xEND") and len("".join(page.tail)) == 500
    assert page.hidden_chars == 300_003 - 1500
    assert window.cut


def test_a_character_split_between_two_reads_is_not_broken():
    window = OutputWindow()
    data = "привет\n".encode()
    window.add("stdout", data[:1])
    window.add("stdout", data[1:])
    assert window.take() == [{"stream": "stdout", "text": "привет\n"}]


def test_a_printing_loop_is_stopped_at_the_output_limit_with_its_last_lines_sent():
    """The agent's own runner, unconfined (no uid), as on a developer's machine."""
    messages: list[dict] = []

    async def collect(message: dict) -> None:
        messages.append(message)

    async def main():
        runner = CellRunner(env={}, limits=CellLimits(output_bytes=2 * 1024 * 1024), uid=None, cgroup_procs=[])
        result = await runner.run(code="i = 0\nwhile True:\n    print(i)\n    i += 1\n", timeout=60, on_output=collect)
        # The runner starts the next warm process in the background: let it finish, then stop it.
        await asyncio.gather(*(t for t in asyncio.all_tasks() if t is not asyncio.current_task()))
        await runner.close()
        return result

    result = asyncio.run(main())
    assert result.reason == "output" and result.truncated
    head = "".join(m["text"] for m in messages if not m.get("tail"))
    assert head.startswith("0\n1\n2\n")
    last = [m for m in messages if m.get("tail")][-1]["text"].splitlines()
    # The tail ends where the process was stopped: consecutive numbers up to its last full line.
    numbers = [int(line) for line in last[:-1]]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) and numbers[-1] > 100_000
    # A few messages a second, not one per print.
    assert len(messages) < 200


def test_a_run_that_printed_and_ended_is_not_held_back_by_the_output_interval(monkeypatch):
    """Output is sent at most every OUTPUT_EVERY_S while a run goes on; its end is sent as soon as it ends.
    With the interval at 30 s, a run that prints and ends a moment later must still return at once."""
    from sandboxes.agent import cells

    monkeypatch.setattr(cells, "OUTPUT_EVERY_S", 30)
    messages: list[dict] = []

    async def collect(message: dict) -> None:
        messages.append(message)

    async def main():
        runner = CellRunner(env={}, limits=CellLimits(), uid=None, cgroup_procs=[])
        try:
            code = "import time\nprint('first', flush=True)\ntime.sleep(0.3)\nprint('last')\n"
            return await asyncio.wait_for(runner.run(code=code, timeout=60, on_output=collect), 10)
        finally:
            await runner.close()

    result = asyncio.run(main())
    assert result.status == 0 and "".join(m["text"] for m in messages) == "first\nlast\n", (result, messages)
