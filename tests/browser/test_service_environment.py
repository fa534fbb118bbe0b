"""The browser tests lift Django's async guard for their own thread; the servers they drive must not
inherit that, or an async-safety error in the ASGI server or the worker could never fail a test."""

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def environment_of(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode(errors="replace").partition("=")[::2] for p in pairs if p)


def test_the_asgi_server_and_the_worker_keep_djangos_async_guard(asgi_server, celery_worker):
    assert os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"), "the browser tests' own thread runs with the guard lifted"
    for service in (asgi_server, celery_worker):
        environment = environment_of(service.process.pid)
        assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in environment, service.name
        # ...and they still get this run's settings.
        assert environment["REDIS_URL"] == os.environ["REDIS_URL"]
        assert environment["DJANGO_SETTINGS_MODULE"] == os.environ["DJANGO_SETTINGS_MODULE"]
