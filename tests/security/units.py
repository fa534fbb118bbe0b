"""Sandbox units started straight through the process backend (no worker), for tests of the walls."""

from __future__ import annotations

import contextlib
import itertools
import json
import textwrap
import time
from collections.abc import Iterator

from django.conf import settings

from sandboxes import agent_client
from sandboxes.backends.base import UnitSpec
from sandboxes.backends.process import ProcessBackend
from tests.aio import run

_numbers = itertools.count(700_000)


class Unit:
    def __init__(self, backend: ProcessBackend, broker: str) -> None:
        self.backend = backend
        self.name = f"{settings.SANDBOX_INSTANCE}-{next(_numbers)}"
        backend.start(UnitSpec(name=self.name, broker=broker))
        self.socket = backend.socket_path(self.name)
        deadline = time.monotonic() + 150
        while True:
            try:
                status = run(agent_client.status(self.socket))
            except agent_client.AgentUnavailable:
                status = {"ready": False, "stage": "starting agent"}
            if status["ready"]:
                return
            if status["stage"] == "failed" or time.monotonic() > deadline:
                raise AssertionError(f"{broker} did not start: {status}")
            time.sleep(0.1)

    def run(self, code: str, *, timeout: float = 30) -> tuple[int, str, float]:
        """Run ``code`` as a cell; returns (status, output, seconds from request to exit)."""
        output: list[str] = []

        async def collect(message):
            output.append(message.get("text", ""))

        started = time.perf_counter()
        result = run(agent_client.run(self.socket, code=code, timeout=timeout, on_message=collect))
        return result["status"], "".join(output), time.perf_counter() - started

    def stop(self) -> None:
        self.backend.stop(self.name)


@contextlib.contextmanager
def unit_running(backend, kind: str) -> Iterator[Unit]:
    """A unit of ``kind`` on ``backend`` for the block; stopped after, and the data its stop kept discarded."""
    started = Unit(backend, kind)
    try:
        yield started
    finally:
        started.stop()
        for key in backend.kept_keys():
            if started.name in key:
                backend.discard_kept(key)


def cell_found(unit: Unit, code: str) -> dict:
    """Runs ``code`` (which sets ``found``, a dict; ``libc`` is the C library) in a cell; returns ``found``."""
    program = "import ctypes, json, os, subprocess\nlibc = ctypes.CDLL(None, use_errno=True)\nfound = {}\n"
    program += textwrap.dedent(code) + "\nprint('FOUND' + json.dumps(found))\n"
    status, output, _ = unit.run(program)
    assert status == 0, output
    return json.loads(next(line for line in output.splitlines() if line.startswith("FOUND")).removeprefix("FOUND"))
