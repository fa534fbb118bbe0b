"""What of a cell's output reaches the page: its head, a count of what is not shown, and its tail.

A cell that prints in a loop writes millions of tiny pieces. Sending each one
would flood the WebSocket and the page; cutting after the first megabyte (as
Jupyter's data-rate limit does) loses the end, which is where the error or the
last value is. So the first lines go out as written, and after them only a
rolling window of the last lines is kept and sent a few times a second, with
the number of lines that fell out of it in between.
"""

from __future__ import annotations

import codecs
from typing import Any

#: The first lines of a run's output, sent as written.
HEAD_LINES = 500
HEAD_CHARS = 64 * 1024
#: After the head, the last lines of the output: what the page shows below "N lines not shown".
TAIL_LINES = 200
TAIL_CHARS = 32 * 1024


class OutputWindow:
    """The head and rolling tail of one run's output, and the messages that carry them.

    ``add`` takes bytes as the pipes give them; ``take`` returns the protocol
    messages to send now, each ``{"stream", "text"}``. Messages of the tail also
    carry ``"tail": True``, and the first one after a gap carries ``"skipped"``
    (lines not shown before its text) and ``"skipped_chars"``. The page keeps a
    tail as long as this one, so head, count and tail together are the output
    with only its middle left out. Memory is bounded: whatever is written
    between two ``take`` calls, at most about TAIL_CHARS plus one read is held.
    """

    def __init__(
        self,
        *,
        head_lines: int = HEAD_LINES,
        head_chars: int = HEAD_CHARS,
        tail_lines: int = TAIL_LINES,
        tail_chars: int = TAIL_CHARS,
    ) -> None:
        self.head_lines_left = head_lines
        self.head_chars_left = head_chars
        self.tail_lines = tail_lines
        self.tail_chars = tail_chars
        self.in_tail = False
        self.head: list[tuple[str, str]] = []  # (stream, text) not yet sent
        self.tail: list[tuple[str, str]] = []  # (stream, text) not yet sent, never merged: a piece is one read
        self.tail_newlines = 0
        self.tail_length = 0
        self.skipped = 0  # lines dropped since the last take
        self.skipped_chars = 0
        self.cut = False  # whether anything was ever left out
        self.finished = False  # set by the runner once both pipes have ended
        self.decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")}

    def add(self, stream: str, data: bytes, *, final: bool = False) -> None:
        """Take what ``stream`` gave; ``final`` at its end flushes a character cut in half."""
        text = self.decoders[stream].decode(data, final)
        if not text:
            return
        if not self.in_tail:
            text = self._add_head(stream, text)
            if not text:
                return
        self.tail.append((stream, text))
        self.tail_newlines += text.count("\n")
        self.tail_length += len(text)
        # Whole pieces fall out while the rest still holds the tail; the exact cut waits for take().
        while len(self.tail) > 1:
            first = self.tail[0][1]
            newlines = first.count("\n")
            if self.tail_newlines - newlines < self.tail_lines + 1 and self.tail_length - len(first) < self.tail_chars:
                break
            self.tail.pop(0)
            self._drop(first, newlines)

    def _add_head(self, stream: str, text: str) -> str:
        """Send what fits in the head; returns the rest, for the tail."""
        limit = min(len(text), self.head_chars_left)
        end = 0
        lines = 0
        while lines < self.head_lines_left:
            found = text.find("\n", end, limit)
            if found == -1:
                end = limit
                break
            end = found + 1
            lines += 1
        self.head_lines_left -= lines
        self.head_chars_left -= end
        if end:
            self.head.append((stream, text[:end]))
        if self.head_lines_left <= 0 or self.head_chars_left <= 0:
            self.in_tail = True
        return text[end:]

    def _drop(self, text: str, newlines: int) -> None:
        self.skipped += newlines
        self.skipped_chars += len(text)
        self.tail_newlines -= newlines
        self.tail_length -= len(text)
        self.cut = True

    def _cut_tail(self) -> None:
        """Keep only the last ``tail_lines`` lines and at most ``tail_chars`` characters."""
        ends_line = bool(self.tail) and self.tail[-1][1].endswith("\n")
        lines = self.tail_newlines + (0 if ends_line else 1)
        extra = lines - self.tail_lines  # lines to leave out, from the front
        while self.tail and extra > 0:
            stream, text = self.tail[0]
            newlines = text.count("\n")
            if newlines < extra or (newlines == extra and text.endswith("\n")):
                self.tail.pop(0)
                self._drop(text, newlines)
                extra -= newlines
                continue
            end = len(text) - len(text.split("\n", extra)[-1])  # just past the extra-th newline
            self.tail[0] = (stream, text[end:])
            self._drop(text[:end], extra)
            extra = 0
        while self.tail and self.tail_length > self.tail_chars:
            stream, text = self.tail[0]
            over = self.tail_length - self.tail_chars
            if over >= len(text):
                self.tail.pop(0)
                self._drop(text, text.count("\n"))
                continue
            # Leave out whole lines where there are any; one endless line is cut where it must be.
            newline = text.find("\n", over - 1)
            end = newline + 1 if newline != -1 and (newline + 1 < len(text) or len(self.tail) > 1) else over
            self.tail[0] = (stream, text[end:])
            self._drop(text[:end], text.count("\n", 0, end))

    def take(self) -> list[dict[str, Any]]:
        """The messages to send now (possibly none); what they carry is no longer held."""
        messages = _merged(self.head)
        self.head = []
        if self.tail:
            self._cut_tail()
            tail = _merged(self.tail)
            for message in tail:
                message["tail"] = True
            if self.skipped or self.skipped_chars:
                if not tail:
                    tail = [{"stream": "stdout", "text": "", "tail": True}]
                tail[0]["skipped"] = self.skipped
                tail[0]["skipped_chars"] = self.skipped_chars
            messages += tail
            self.tail = []
            self.tail_newlines = self.tail_length = 0
            self.skipped = self.skipped_chars = 0
        return messages


def _merged(pieces: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """One message per run of pieces from the same stream."""
    messages: list[dict[str, Any]] = []
    for stream, text in pieces:
        if not text:
            continue
        if messages and messages[-1]["stream"] == stream:
            messages[-1]["text"] += text
        else:
            messages.append({"stream": stream, "text": text})
    return messages
