"""The channel layer outlives a Redis killed and restarted empty: receives wait, groups are joined again.

A Redis of the test's own (killed with SIGKILL, so not the session's), on a port of its own, keeping
nothing on disk like the run's.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import Iterator

import pytest

from courseplatform.channel_layer import DOWN, UP, RestartTolerantRedisChannelLayer
from tests.services import RUN_DIR, Service, free_port, port_open, wait_for

pytestmark = [pytest.mark.integration]


class OwnRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.config = RUN_DIR / f"redis-{self.port}.conf"
        self.config.write_text(f'port {self.port}\nbind 127.0.0.1\nsave ""\nappendonly no\n')
        self.service: Service | None = None

    def start(self) -> None:
        self.service = Service(f"redis-{self.port}", [shutil.which("redis-server") or "redis-server", str(self.config)])
        wait_for(lambda: port_open(self.port), timeout=10, what="the test's Redis up")

    def kill(self) -> None:
        assert self.service is not None
        self.service.stop(sig=signal.SIGKILL)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    redis = OwnRedis()
    redis.start()
    try:
        yield redis
    finally:
        if redis.service is not None and redis.service.alive():
            redis.service.stop()


def test_a_receive_waits_out_a_redis_restart_and_its_group_reaches_it_again(own_redis):
    async def scenario() -> None:
        layer = RestartTolerantRedisChannelLayer(hosts=[f"redis://127.0.0.1:{own_redis.port}/0"], expiry=30)
        member, loner = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("learners", member)
        await layer.group_send("learners", {"type": "before"})
        assert (await asyncio.wait_for(layer.receive(member), 10))["type"] == "before"

        receiving = asyncio.ensure_future(layer.receive(member))
        lonely = asyncio.ensure_future(layer.receive(loner))
        await asyncio.sleep(0.5)  # both waiting on Redis
        own_redis.kill()
        # The member is told at once; the channel in no group only waits.
        assert await asyncio.wait_for(receiving, 15) == DOWN
        receiving = asyncio.ensure_future(layer.receive(member))
        await asyncio.sleep(1)
        assert not receiving.done() and not lonely.done()

        own_redis.start()  # empty: it knows no group
        assert await asyncio.wait_for(receiving, 30) == UP
        # Joined again: a broadcast to the group reaches the member, and a send reaches the loner.
        await layer.group_send("learners", {"type": "after"})
        assert (await asyncio.wait_for(layer.receive(member), 10))["type"] == "after"
        await layer.send(loner, {"type": "direct"})
        assert (await asyncio.wait_for(lonely, 10))["type"] == "direct"
        await layer.group_discard("learners", member)
        assert layer.memberships == {}
        await layer.close_pools()

    asyncio.run(scenario())


def test_a_discard_while_redis_is_away_is_no_error(own_redis):
    async def scenario() -> None:
        layer = RestartTolerantRedisChannelLayer(hosts=[f"redis://127.0.0.1:{own_redis.port}/0"])
        channel = await layer.new_channel()
        await layer.group_add("learners", channel)
        own_redis.kill()
        await layer.group_discard("learners", channel)  # a closing page while Redis is down
        assert layer.memberships == {}
        await layer.close_pools()

    asyncio.run(scenario())
