"""The channel layer: channels_redis's, made to outlive a Redis that dies and comes back empty.

channels_redis raises out of ``receive()`` when Redis goes away, and Channels ends every consumer whose
receive loop raises, so each open page lost its socket (channels_redis issue #20). A Redis restarted
without persistence has also forgotten every group membership. This subclass keeps the process's
memberships and, when a receive fails for want of Redis, waits for it (one probe for the whole process),
adds every membership again and then goes on receiving. A channel in a group is told both ends of the
outage as messages of its own: ``{"type": "layer.down"}`` when it begins, ``{"type": "layer.up"}`` once
its groups hold it again (what was sent to them meanwhile is lost, so a consumer reads afresh). A consumer
that joins groups through this layer handles both (``layer_down``, ``layer_up``); one that joins none is
told nothing and only waits out the outage.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.exceptions
from channels_redis.core import RedisChannelLayer

logger = logging.getLogger(__name__)

#: What Redis being away (killed, restarting, unreachable) looks like from redis-py.
REDIS_AWAY = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
#: Seconds between two looks at a Redis that is away, growing to the last.
PROBE_EVERY_S = (0.25, 0.5, 1.0, 2.0)
DOWN = {"type": "layer.down"}
UP = {"type": "layer.up"}


class RestartTolerantRedisChannelLayer(RedisChannelLayer):
    """``channels_redis.core.RedisChannelLayer`` whose ``receive`` survives a Redis restart (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.memberships: dict[str, set[str]] = {}  # this process's channel -> its groups
        self.outage: asyncio.Task | None = None

    async def group_add(self, group: str, channel: str) -> None:
        await super().group_add(group, channel)
        if "!" in channel:  # a channel of this process: it is this process's to add again
            self.memberships.setdefault(channel, set()).add(group)

    async def group_discard(self, group: str, channel: str) -> None:
        """Forgets the membership; a Redis that is away is no error (a restarted one has forgotten it too)."""
        groups = self.memberships.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self.memberships[channel]
        try:
            await super().group_discard(group, channel)
        except REDIS_AWAY:
            logger.info("channel layer: group_discard while Redis is away", extra={"group": group})

    async def receive(self, channel: str) -> dict[str, Any]:
        while True:
            outage = self.outage
            if outage is not None and not self._buffered(channel):
                await asyncio.shield(outage)
                continue
            try:
                return await super().receive(channel)
            except REDIS_AWAY:
                self._outage_begin()

    def _buffered(self, channel: str) -> bool:
        queue = self.receive_buffer.get(channel)
        return queue is not None and not queue.empty()

    def _tell(self, message: dict[str, Any]) -> None:
        """Put ``message`` before every member channel of this process, the way the layer delivers its own."""
        for channel in self.memberships:
            self.receive_buffer[channel].put_nowait(dict(message))

    def _outage_begin(self) -> None:
        if self.outage is None:
            logger.warning("channel layer: Redis is away; waiting for it", extra={"channels": len(self.memberships)})
            self._tell(DOWN)
            self.outage = asyncio.ensure_future(self._recover())

    async def _recover(self) -> None:
        """Look at Redis until it answers, then add this process's memberships again and say so."""
        attempt = 0
        try:
            while True:
                try:
                    for index in range(self.ring_size):
                        await self.connection(index).ping()
                    for channel, groups in list(self.memberships.items()):
                        for group in list(groups):
                            await super().group_add(group, channel)
                    break
                except REDIS_AWAY:
                    await asyncio.sleep(PROBE_EVERY_S[min(attempt, len(PROBE_EVERY_S) - 1)])
                    attempt += 1
        finally:
            self.outage = None
        logger.warning("channel layer: Redis is back; groups joined again", extra={"channels": len(self.memberships)})
        self._tell(UP)
