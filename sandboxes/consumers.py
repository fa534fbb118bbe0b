"""The live WebSocket of a chapter page: sandbox states, cell output and broker events.

Authenticated by the Django session and origin-checked in asgi.py; a connection
joins only the groups of sandboxes its user owns.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import selectors

logger = logging.getLogger(__name__)

#: Close codes the page understands (4000-4999 are the application's own).
CLOSE_UNAUTHENTICATED = 4401


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """One per open page: joins ``user-<id>`` and every ``sandbox-<id>`` group of the user."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user_id = user.pk
        self.groups_joined: set[str] = set()
        await self._join(f"user-{user.pk}")
        for group in await self._sandbox_groups():
            await self._join(group)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", set()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined.add(group)

    @database_sync_to_async
    def _sandbox_groups(self) -> list[str]:
        return [s.group_name for s in selectors.sandboxes_active(user_id=self.user_id)]

    async def sandbox_state(self, event: dict[str, Any]) -> None:
        """A sandbox changed state or stage (sent by tasks); joins its group if new."""
        group = f"sandbox-{event['sandbox']['id']}"
        if group not in self.groups_joined:
            await self._join(group)
        await self.send_json({"type": "sandbox.state", "sandbox": event["sandbox"]})

    async def sandbox_event(self, event: dict[str, Any]) -> None:
        """Broker events for a sandbox this connection watches."""
        await self.send_json({"type": "sandbox.event", "sandbox": event["sandbox_id"], "events": event["events"]})
