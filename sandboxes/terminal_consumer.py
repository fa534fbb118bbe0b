"""The terminal WebSocket (``/ws/terminal/<broker>/``): a relay between xterm.js and the agent's pty.

Authenticated by the Django session and origin-checked in asgi.py, like the live
socket. It reaches only the user's own READY sandbox of that broker: the sandbox
is looked up by the session's user and the broker named in the path, never by an
id the browser sends. The shell itself lives in the agent (agent/terminal.py), so
closing this socket (a reload) leaves it running for the next attach.

Frames: from the browser, JSON text ``{"type": "input", "data"}`` and
``{"type": "resize", "rows", "cols"}``; to the browser, the pty's bytes as binary
frames and JSON text ``{"type": "closed"|"error", "message"}`` before a close.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import urllib.parse
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import translation
from django.utils.translation import gettext_lazy

from courseplatform.language import language_chosen

from . import agent_client, selectors
from .activity import activity_note
from .agent import protocol
from .services.provisioning import sandbox_address

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NO_SANDBOX = 4404
CLOSE_ENDED = 4000
MAX_FRAME_CHARS = 64 * 1024
NO_SANDBOX = gettext_lazy("Песочница этого брокера не запущена. Запустите её, затем откройте терминал.")
SANDBOX_STOPPED = gettext_lazy("Песочница остановлена — терминал закрыт.")
SHELL_ENDED = gettext_lazy("Оболочка завершилась. Откройте терминал снова, чтобы начать новую.")
SANDBOX_SILENT = gettext_lazy("Песочница не отвечает. Запустите её снова.")


def _size(query: bytes) -> tuple[int, int]:
    params = urllib.parse.parse_qs(query.decode("latin-1"))
    try:
        return int(params["rows"][0]), int(params["cols"][0])
    except (KeyError, ValueError, IndexError):
        return 24, 80


class TerminalConsumer(AsyncWebsocketConsumer):
    async def dispatch(self, message: dict[str, Any]) -> None:
        with translation.override(language_chosen(self.scope.get("cookies") or {})):
            await super().dispatch(message)

    async def connect(self) -> None:
        self.writer: asyncio.StreamWriter | None = None
        self.relay: asyncio.Task | None = None
        user = self.scope.get("user")
        # Accepted before every refusal only to say why: a close before accept reaches the browser as a bare 403.
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        broker = str(self.scope["url_route"]["kwargs"].get("broker", ""))
        sandbox = await database_sync_to_async(selectors.sandbox_ready_of)(user_id=user.pk, broker=broker)
        if sandbox is None:
            await self._end("error", NO_SANDBOX, CLOSE_NO_SANDBOX)
            return
        self.sandbox = sandbox
        rows, cols = _size(self.scope.get("query_string", b""))
        try:
            address = await sandbox_address(sandbox=sandbox)
            reader, self.writer = await agent_client.terminal(address, rows=rows, cols=cols)
        except agent_client.AgentUnavailable:
            await self._end("error", SANDBOX_SILENT, CLOSE_NO_SANDBOX)
            return
        self.relay = asyncio.ensure_future(self._from_agent(reader))

    async def _end(self, kind: str, message: Any, code: int) -> None:
        await self.send(text_data=json.dumps({"type": kind, "message": str(message)}, ensure_ascii=False))
        await self.close(code=code)

    async def _from_agent(self, reader: asyncio.StreamReader) -> None:
        with translation.override(language_chosen(self.scope.get("cookies") or {})):
            try:
                while True:
                    message = await protocol.read_message(reader)
                    if message is None:
                        # Gone without a word: the agent ended some other way than a stop (it says so then).
                        await self._end("closed", SANDBOX_SILENT, CLOSE_ENDED)
                        return
                    if message.get("type") == "output":
                        await self.send(bytes_data=base64.b64decode(message.get("data", "")))
                    elif message.get("type") == "closed":
                        reason = SHELL_ENDED if message.get("reason") == "exit" else SANDBOX_STOPPED
                        await self._end("closed", reason, CLOSE_ENDED)
                        return
                    elif message.get("type") == "error":
                        await self._end("error", SANDBOX_SILENT, CLOSE_ENDED)
                        return
            except (ConnectionError, ValueError):
                await self._end("closed", SANDBOX_SILENT, CLOSE_ENDED)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.writer is None or text_data is None or len(text_data) > MAX_FRAME_CHARS:
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            return
        if not isinstance(content, dict):
            return
        if content.get("type") == "input" and isinstance(content.get("data"), str):
            forward = {"op": "input", "data": content["data"]}
            activity_note(self.sandbox)  # typing keeps the sandbox from its idle timeout, like running cells
        elif content.get("type") == "resize":
            forward = {"op": "resize", "rows": content.get("rows"), "cols": content.get("cols")}
        else:
            return
        with contextlib.suppress(ConnectionError):
            await protocol.send(self.writer, forward)

    async def disconnect(self, code: int) -> None:
        if self.relay is not None:
            self.relay.cancel()
        if self.writer is not None:
            self.writer.close()
