"""Following starting units until ready or failed, without a worker slot: one event loop per process follows them all.

The provision task hands its sandbox to this process's follower and returns at
once, so no worker slot is held while a unit starts or its broker boots. The
follower starts the unit (a few at a time per process), then keeps one ``watch``
connection to its agent: the agent sends each change of stage as it happens (no
one asks it every tick), and every change is recorded through
``provisioning.sandbox_provision_apply``, one log line and one broadcast each.

A follower holds a lease in Redis for each sandbox it follows and renews it while
it runs. A worker killed mid-boot takes its follower along; its leases lapse
within LEASE_S, and ``sandboxes_adopt`` (beat, and after each worker start) hands
every provisioning sandbox without a lease to a follower again, so that it still
ends ready or failed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from django.conf import settings
from django.db import close_old_connections, connection

from .. import agent_client
from ..models import Sandbox, State
from . import jobs, provisioning

log = logging.getLogger(__name__)

#: A follower's claim on a sandbox lapses this long after its last renewal (a killed worker renews nothing).
LEASE_S = 10
RENEW_EVERY_S = 3
#: How soon to try again when the agent's socket does not answer yet (it opens right after the agent starts).
RETRY_S = 0.2
#: Threads for the database work of one process's follower (records, broadcasts, the backend's poll and stop).
DB_THREADS = 4
#: Units one process starts at once (a start waits mostly for the unit's agent to come up, not for a CPU).
START_THREADS = 4

T = TypeVar("T")


def _lease_key(sandbox_id: int) -> str:
    return f"sandbox-follow:{settings.SANDBOX_INSTANCE}:{sandbox_id}"


class Follower:
    """An event loop in a thread of its own that follows starting units; one per process (see ``follower``)."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex
        self.redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
        self.held: set[int] = set()
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="sandbox-follower")
        self.starter = concurrent.futures.ThreadPoolExecutor(max_workers=START_THREADS, thread_name_prefix="sandbox-starter")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="sandbox-follower", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.create_task(self._renew())
        self.loop.run_forever()

    def follow(self, sandbox_id: int, *, start: bool = False) -> concurrent.futures.Future[bool]:
        """Follow the sandbox until it is ready or failed (first starting its unit, with ``start``).

        The future says False if another follower has it.
        """
        return asyncio.run_coroutine_threadsafe(self._follow(sandbox_id, start), self.loop)

    async def _sync(self, function: Callable[..., T], *, executor: concurrent.futures.Executor | None = None, **kwargs: Any) -> T:
        def call() -> T:
            close_old_connections()  # a connection the database dropped is replaced, not failed on
            try:
                return function(**kwargs)
            finally:
                # Not kept between calls: an idle thread of this pool must not hold the database open
                # (a test run's teardown, a migration), and a call is rare enough to connect anew.
                connection.close()

        return await self.loop.run_in_executor(executor or self.executor, call)

    async def _follow(self, sandbox_id: int, start: bool) -> bool:
        key = _lease_key(sandbox_id)
        try:
            leased = await asyncio.to_thread(self.redis.set, key, self.token, nx=True, ex=LEASE_S)
        except redis.RedisError:
            # Followed all the same: a second follower after an adoption costs a duplicate line, a lost sandbox more.
            log.warning("no lease for a starting sandbox", extra={"sandbox_id": sandbox_id}, exc_info=True)
            leased = True
        if not leased:
            return False  # followed elsewhere (a task delivered twice, or an adoption that raced its owner)
        self.held.add(sandbox_id)
        try:
            if start:
                sandbox = await self._sync(provisioning.sandbox_provision_start, executor=self.starter, sandbox_id=sandbox_id)
                if sandbox.state != State.PROVISIONING:
                    return True
            async with asyncio.timeout(provisioning.PROVISION_TIMEOUT_S):
                await self._watch(sandbox_id)
        except TimeoutError:
            await self._sync(provisioning.sandbox_provision_expire, sandbox_id=sandbox_id)
        except Exception:
            # Left provisioning, with its lease given back below: the next adoption follows it again.
            log.exception("following a starting sandbox failed", extra={"sandbox_id": sandbox_id})
        finally:
            self.held.discard(sandbox_id)
            with contextlib.suppress(redis.RedisError):
                await asyncio.to_thread(self._release, key=key)
        return True

    async def _watch(self, sandbox_id: int) -> None:
        address = await self._sync(provisioning.sandbox_agent_address, sandbox_id=sandbox_id)
        while True:
            try:
                # Closed as soon as it is over: the agent keeps a watcher until the connection goes.
                async with contextlib.aclosing(agent_client.watch(address)) as statuses:
                    async for status in statuses:
                        if await self._sync(provisioning.sandbox_provision_apply, sandbox_id=sandbox_id, status=status):
                            return
            except agent_client.AgentUnavailable:
                if await self._sync(provisioning.sandbox_provision_lost, sandbox_id=sandbox_id):
                    return
            await asyncio.sleep(RETRY_S)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            if self.held:
                try:
                    # Not on the database threads: a slow stop there must not let the leases lapse.
                    await asyncio.to_thread(self._renew_now)
                except redis.RedisError:
                    log.warning("could not renew the leases of starting sandboxes", exc_info=True)

    def _renew_now(self) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            for sandbox_id in list(self.held):
                pipe.set(_lease_key(sandbox_id), self.token, ex=LEASE_S)
            pipe.execute()

    def _release(self, *, key: str) -> None:
        # Only our own lease: after a lapse another follower may have taken the sandbox on.
        if self.redis.get(key) == self.token.encode():
            self.redis.delete(key)

    def release_all(self) -> None:
        """Give back every lease now (the process is ending): adoption need not wait for them to lapse."""
        for sandbox_id in list(self.held):
            try:
                self._release(key=_lease_key(sandbox_id))
            except redis.RedisError:
                return


_follower: Follower | None = None
_follower_pid = 0
_follower_lock = threading.Lock()


def follower() -> Follower:
    """This process's follower, started on first use (after a fork, the child starts its own)."""
    global _follower, _follower_pid
    with _follower_lock:
        if _follower is None or _follower_pid != os.getpid():
            _follower, _follower_pid = Follower(), os.getpid()
        return _follower


def sandbox_follow(*, sandbox_id: int, start: bool = False) -> concurrent.futures.Future[bool]:
    """Follow a starting sandbox in the background until it is ready or failed; returns at once.

    With ``start``, the follower first starts its unit (``provisioning.sandbox_provision_start``), a few
    at a time per process: a class arriving together waits for neither the worker's slots nor each other.
    """
    return follower().follow(sandbox_id, start=start)


def sandboxes_follow_release() -> None:
    """Give back the leases of this process's follower (a worker process shutting down)."""
    if _follower is not None and _follower_pid == os.getpid():
        _follower.release_all()


def sandbox_followed(*, sandbox_id: int) -> bool:
    """Whether a live follower holds the sandbox (its lease has not lapsed)."""
    return bool(redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5).exists(_lease_key(sandbox_id)))


def sandboxes_adopt() -> list[int]:
    """Queue a provision for every provisioning sandbox that no follower holds (its worker died); returns their ids.

    Provisioning is idempotent: the unit is found running (or started again) and followed from where it is.
    """
    owners = dict(Sandbox.objects.filter(state=State.PROVISIONING).values_list("pk", "user_id"))
    if not owners:
        return []
    provisioning_ids = list(owners)
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    held: list[bytes | None] = client.mget([_lease_key(pk) for pk in provisioning_ids])  # type: ignore[assignment]
    orphans = [pk for pk, lease in zip(provisioning_ids, held, strict=True) if lease is None]
    for pk in orphans:
        log.info("sandbox %s: following again after its follower was lost", pk, extra={"sandbox_id": pk, "user_id": owners[pk]})
        jobs.job_enqueue(jobs.PROVISION, pk)
    return orphans
