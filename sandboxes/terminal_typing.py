"""Commands typed into a sandbox's terminal, as a learner types them, with each one's exit status.

How a terminal exercise's solution (docs/course-format.md) is proved by the course walk
and by an instructor's proof of an exercise: through the agent's own terminal
(agent/terminal.py), so the commands meet the same shell, tools and confinement as the
learner's. After each command a marker with ``$?`` and a nonce of this run is typed;
the echo of what was typed never matches the marker's pattern, and neither does an
earlier run's marker in the scrollback that an attach replays first.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
from typing import Any

from asgiref.sync import async_to_sync

from . import agent_client
from .agent import protocol
from .models import Sandbox
from .services.provisioning import sandbox_socket

ROWS, COLS = 50, 200


def command_lines(commands: str) -> list[str]:
    """The commands one per entry: blank lines dropped, lines ending in a backslash joined to the next."""
    lines: list[str] = []
    pending = ""
    for raw in commands.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line, pending = pending + raw, ""
        if line.strip():
            lines.append(line)
    if pending.strip():
        lines.append(pending)
    return lines


async def _read_until(reader: asyncio.StreamReader, seen: bytearray, pattern: re.Pattern[bytes], start: int) -> re.Match[bytes]:
    """Read the terminal's output into ``seen`` until ``pattern`` matches what came after ``start``."""
    while True:
        found = pattern.search(seen, start)
        if found:
            return found
        message = await protocol.read_message(reader)
        if message is None or message.get("type") == "closed":
            raise ConnectionError(f"the terminal closed: {message}")
        if message.get("type") == "output":
            seen += base64.b64decode(message.get("data", ""))


async def terminal_commands_typed(*, where: agent_client.Address, commands: str, timeout: float) -> dict[str, Any]:
    """Type ``commands`` line by line into the unit's terminal, each after the previous one ended.

    Returns ``{"status": the first non-zero exit status or 0, "output": what the terminal
    showed, "reason": "timeout" when the commands did not end in ``timeout`` seconds}``;
    stops at the first command that fails.
    """
    nonce = secrets.token_hex(6)
    marker = re.compile(rb"@@ba-" + nonce.encode() + rb"=(\d+)")
    reader, writer = await agent_client.terminal(where, rows=ROWS, cols=COLS)
    seen = bytearray()
    status: int | None = 0
    reason = None
    try:
        async with asyncio.timeout(timeout):
            await _read_until(reader, seen, re.compile(rb"."), 0)  # the shell has spoken: its prompt, or the scrollback
            start = len(seen)
            for line in command_lines(commands):
                await protocol.send(writer, {"op": "input", "data": line + "\r"})
                await protocol.send(writer, {"op": "input", "data": f"printf '\\n@@ba-%s=%s\\n' {nonce} \"$?\"\r"})
                found = await _read_until(reader, seen, marker, start)
                start, status = found.end(), int(found.group(1))
                if status != 0:
                    break
    except TimeoutError:
        status, reason = None, "timeout"
        # A command still running (or waiting for an answer) is interrupted, so the terminal is usable again.
        await protocol.send(writer, {"op": "input", "data": "\x03"})
    finally:
        writer.close()
    return {"status": status, "output": seen.decode("utf-8", "replace"), "reason": reason}


def terminal_commands_collected(*, sandbox: Sandbox, commands: str, timeout: int) -> dict[str, Any]:
    """:func:`terminal_commands_typed` in the sandbox's terminal, from synchronous code (a worker, a test)."""
    return async_to_sync(terminal_commands_typed)(where=sandbox_socket(sandbox=sandbox), commands=commands, timeout=timeout)
