"""Run a coroutine to the end from synchronous test code, whatever loop this thread has."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in a fresh thread: Playwright's sync API keeps a loop in the main one."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def in_thread(call: Callable[[], T]) -> T:
    """A synchronous call that may use async_to_sync (reconcile, adopt, broadcasts), in a fresh thread for the same
    reason; its database connections close with it."""

    def call_and_close() -> T:
        from django.db import connections

        try:
            return call()
        finally:
            connections.close_all()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(call_and_close).result()
