"""Limits on what one live connection and one user may ask at once: frames per second, runs at once, lifecycle requests.

Per connection the counts live in memory; per user (across all their tabs and every web process) in
Redis, as leases and windows that expire by themselves, so a web process that crashes mid-run
gives the user's slots back within RUN_LEASE_S. A refusal is a ``Refused`` carrying a message the
learner can act on; the consumer turns it into an ``error`` (or ``cell.error``) frame.

The numbers can be changed in settings (the names in ``_limit``); they are read on each use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.utils.translation import gettext_lazy

logger = logging.getLogger(__name__)

#: Defaults; each may be set in settings under the same name.
LIVE_FRAMES_PER_S = 20  # a connection's steady rate of frames of any kind
LIVE_FRAMES_BURST = 60  # ... and how many may come at once (a page sends a handful on connect)
LIVE_RUNS_PER_USER = 3  # cells and checks running at once, counted across the user's connections
LIVE_LIFECYCLE_PER_MINUTE = 20  # sandbox.ensure/stop/reset/extend per user and minute
RUN_LEASE_S = 30  # a run's slot expires this long after its last renewal

TOO_MANY_FRAMES = gettext_lazy("Слишком много сообщений подряд — это отклонено. Подождите секунду и повторите.")
TOO_MANY_RUNS = gettext_lazy(
    "Одновременно можно выполнять не больше {n} ячеек или проверок. Дождитесь, пока одна закончится, или прервите её."
)
ALREADY_RUNNING = gettext_lazy("Эта ячейка ещё выполняется. Дождитесь окончания или прервите её, затем запустите снова.")
TOO_MANY_LIFECYCLE = gettext_lazy(
    "Слишком много запросов к песочницам (запуск, остановка, сброс) за минуту. Подождите немного и повторите."
)
LIMITS_UNAVAILABLE = gettext_lazy("Сервер сейчас не может принять запрос. Повторите чуть позже.")

# Free expired leases, then take one if fewer than the limit are held. Atomic: two tabs racing for
# the last slot never both get it.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[5]) then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
return 1
"""

# Push a held lease on, and the set's own expiry with it (never shortened: a proof's lease is longer).
_RENEW = """
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[2])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1
"""

#: An exercise proof an instructor asks for holds one of their run slots from the request until the
#: worker has finished it: as long as the proof's task may take (lessons.tasks: 900 s) and a minute.
PROOF_LEASE_S = 960


class Refused(Exception):
    """A request the limits turned away; ``str()`` is what the learner reads, ``reason`` what operators count."""

    def __init__(self, message: object, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _limit(name: str) -> Any:
    return getattr(settings, name, globals()[name])


_clients: dict[int, aioredis.Redis] = {}


def _redis() -> aioredis.Redis:
    """One client per event loop: an asyncio connection belongs to the loop that opened it."""
    loop = asyncio.get_running_loop()
    client = _clients.get(id(loop))
    if client is None:
        client = _clients[id(loop)] = aioredis.Redis.from_url(settings.REDIS_URL)
    return client


def _key(kind: str, user_id: int) -> str:
    return f"{settings.SANDBOX_INSTANCE}:live:{kind}:{user_id}"


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; each frame takes one."""

    def __init__(self, *, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class ConnectionLimits:
    """The limits of one live connection of ``user_id``."""

    def __init__(self, *, user_id: int) -> None:
        self.user_id = user_id
        self.frames = TokenBucket(rate=_limit("LIVE_FRAMES_PER_S"), burst=_limit("LIVE_FRAMES_BURST"))
        self.cells_running: set[tuple[str, ...]] = set()
        self.slots: set[RunSlot] = set()
        self.said_at = float("-inf")
        self.logged_at: dict[str, float] = {}

    def frame(self) -> None:
        """Raises Refused when frames come faster than the connection's rate."""
        if not self.frames.take():
            raise Refused(TOO_MANY_FRAMES, reason="ws_frames")

    def say_too_many_frames(self) -> bool:
        """Whether a refused frame that nobody waits on should be answered: once a second is enough to
        be told, and answering each would double a flood's cost to the server."""
        now = time.monotonic()
        if now - self.said_at < 1:
            return False
        self.said_at = now
        return True

    def log_due(self, reason: str) -> bool:
        """Whether a refusal for ``reason`` should be logged: once a second per connection and reason, so a
        flood is seen in the log without writing a line per frame (the counter counts every one)."""
        now = time.monotonic()
        if now - self.logged_at.get(reason, float("-inf")) < 1:
            return False
        self.logged_at[reason] = now
        return True

    async def lifecycle(self) -> None:
        """Count one sandbox lifecycle request of the user; raises Refused past the minute's allowance."""
        key = "{}:{}".format(_key("lifecycle", self.user_id), int(time.time() // 60))
        try:
            async with _redis().pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, 120)
                count, _ = await pipe.execute()
        except aioredis.RedisError:
            logger.warning("live limits: Redis unreachable", extra={"user_id": self.user_id}, exc_info=True)
            raise Refused(LIMITS_UNAVAILABLE, reason="ws_limits_unavailable") from None
        if count > _limit("LIVE_LIFECYCLE_PER_MINUTE"):
            if count == _limit("LIVE_LIFECYCLE_PER_MINUTE") + 1:
                logger.info("live limits: lifecycle requests refused", extra={"user_id": self.user_id})
            raise Refused(TOO_MANY_LIFECYCLE, reason="ws_lifecycle")

    async def run_begin(self, *, cell: tuple[str, ...]) -> RunSlot:
        """A run slot of the user for ``cell``, held until its ``end()``; raises Refused when that cell is
        already running on this connection or the user already runs as many as they may."""
        if cell in self.cells_running:
            raise Refused(ALREADY_RUNNING, reason="ws_cell_running")
        limit = _limit("LIVE_RUNS_PER_USER")
        key, token, lease = _key("runs", self.user_id), uuid.uuid4().hex, _limit("RUN_LEASE_S")
        try:
            now = time.time()
            taken = await _redis().eval(_ACQUIRE, 1, key, now, now + lease, limit, token, lease * 2)  # type: ignore[misc]
        except aioredis.RedisError:
            logger.warning("live limits: Redis unreachable", extra={"user_id": self.user_id}, exc_info=True)
            raise Refused(LIMITS_UNAVAILABLE, reason="ws_limits_unavailable") from None
        if not taken:
            raise Refused(TOO_MANY_RUNS.format(n=limit), reason="ws_runs")
        self.cells_running.add(cell)
        slot = RunSlot(self, cell, key, token, lease)
        self.slots.add(slot)
        return slot

    async def close(self) -> None:
        """Give back every slot still held (a run cancelled before it began never reached its own ``end()``)."""
        for slot in list(self.slots):
            await slot.end()


class RunSlot:
    """One held run slot; its lease is renewed until ``end()``."""

    def __init__(self, limits: ConnectionLimits, cell: tuple[str, ...], key: str, token: str, lease: float) -> None:
        self.limits, self.cell, self.key, self.token, self.lease = limits, cell, key, token, lease
        self.renewing = asyncio.ensure_future(self._renew())

    async def _renew(self) -> None:
        """Push the lease on while the run lasts: a run may take minutes, a lost process's slot only RUN_LEASE_S."""
        while True:
            await asyncio.sleep(self.lease / 3)
            with contextlib.suppress(aioredis.RedisError):
                await _redis().eval(_RENEW, 1, self.key, time.time() + self.lease, self.token, self.lease * 2)  # type: ignore[misc]

    async def end(self) -> None:
        """Give the slot back (at once; the lease would free it anyway)."""
        self.limits.cells_running.discard(self.cell)
        self.limits.slots.discard(self)
        self.renewing.cancel()
        with contextlib.suppress(aioredis.RedisError):
            # Shielded: a run cancelled by a closing connection still hands its slot back.
            await asyncio.shield(_redis().zrem(self.key, self.token))


def refusal_frame(content: Any, refused: Refused, *, run_id: re.Pattern[str]) -> dict[str, Any]:
    """What the page hears about a refused request, in the frame it waits for: a run ends as
    ``cell.error``, a check as a result that is not an attempt, anything else as an ``error`` the
    sandbox bar shows. ``content`` is the decoded frame, or its text when refused before decoding."""
    if isinstance(content, str):
        with contextlib.suppress(ValueError):
            content = json.loads(content)
    kind = content.get("type") if isinstance(content, dict) else None
    if kind == "cell.run" and run_id.match(str(content.get("run", ""))):
        return {"type": "cell.error", "run": content["run"], "message": str(refused), "refused": True}
    if kind == "exercise.check":
        return {"type": "exercise.result", "exercise": str(content.get("exercise")), "passed": False, "reason": str(refused)}
    return {"type": "error", "message": str(refused), "refused": True}


def over_rate_frame(
    limits: ConnectionLimits, text_data: str | None, refused: Refused, *, run_id: re.Pattern[str]
) -> dict[str, Any] | None:
    """The answer to a frame over the connection's rate: a run or a check by name (its cell waits),
    anything else at most once a second (``None``: say nothing this time)."""
    if text_data is not None and ('"cell.run"' in text_data or '"exercise.check"' in text_data):
        return refusal_frame(text_data, refused, run_id=run_id)
    if limits.say_too_many_frames():
        return {"type": "error", "message": str(refused), "refused": True}
    return None


def proof_slot_take(*, user_id: int) -> str:
    """One of the user's run slots for an exercise proof (the worker's, outside any connection): its token.

    Raises Refused as a cell's run would be: a proof is a run of the instructor's, under the same limit.
    """
    limit, lease = _limit("LIVE_RUNS_PER_USER"), PROOF_LEASE_S
    token, now = f"proof-{uuid.uuid4().hex}", time.time()
    try:
        client = redis.Redis.from_url(settings.REDIS_URL)
        taken = client.eval(_ACQUIRE, 1, _key("runs", user_id), now, now + lease, limit, token, lease * 2)
    except redis.RedisError:
        logger.warning("live limits: Redis unreachable", extra={"user_id": user_id}, exc_info=True)
        raise Refused(LIMITS_UNAVAILABLE, reason="proof_limits_unavailable") from None
    if not taken:
        raise Refused(TOO_MANY_RUNS.format(n=limit), reason="proof_runs")
    return token


def proof_slot_end(*, user_id: int, token: str) -> None:
    """Give a proof's slot back (the worker, when the proof ended however it ended)."""
    with contextlib.suppress(redis.RedisError):
        redis.Redis.from_url(settings.REDIS_URL).zrem(_key("runs", user_id), token)
