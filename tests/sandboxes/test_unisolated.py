"""Without root the process backend refuses, unless a setting allows running brokers side by side."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sandboxes import agent_client
from sandboxes.backends.base import UnitSpec
from sandboxes.backends.process import NOT_ROOT, IsolationUnavailable, ProcessBackend
from tests.aio import run

pytestmark = pytest.mark.integration


def ready(backend: ProcessBackend, name: str) -> dict:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            status = run(agent_client.status(backend.socket_path(name)))
        except agent_client.AgentUnavailable:
            status = {"ready": False, "stage": ""}
        if status["ready"] or status["stage"] == "failed":
            return status
        time.sleep(0.1)
    raise AssertionError(f"{name} was not ready in time")


def test_without_isolation_and_without_permission_the_backend_refuses(settings):
    settings.SANDBOX_ISOLATION = "none"
    settings.SANDBOX_ALLOW_UNISOLATED = False
    with pytest.raises(IsolationUnavailable, match="SANDBOX_ALLOW_UNISOLATED=true"):
        ProcessBackend().start(UnitSpec(name=f"{settings.SANDBOX_INSTANCE}-880001", broker="nats"))
    assert "needs root" in NOT_ROOT


@pytest.mark.parametrize("broker", ["nats", "rabbitmq"])
def test_allowed_unisolated_units_get_ports_of_their_own_run_cells_and_stop_clean(settings, broker):
    settings.SANDBOX_ISOLATION = "none"
    settings.SANDBOX_ALLOW_UNISOLATED = True
    backend = ProcessBackend()
    names = (
        [f"{settings.SANDBOX_INSTANCE}-88{n:04d}" for n in (1, 2)]
        if broker == "nats"
        else [f"{settings.SANDBOX_INSTANCE}-880003"]
    )
    try:
        for name in names:
            backend.start(UnitSpec(name=name, broker=broker))
        statuses = [ready(backend, name) for name in names]
        assert all(s["ready"] for s in statuses), statuses
        urls = [next(iter(s["connection"].values())) for s in statuses]
        assert len(set(urls)) == len(urls)  # two units never share a port
        assert not any(":4222" in u or ":5672/" in u for u in urls)  # not the default ports
        assert not Path(f"/run/netns/{names[0]}").exists()
        code = {
            "nats": "import asyncio, os, nats\nasync def m():\n    nc = await nats.connect(os.environ['NATS_URL'])\n    await nc.publish('x', b'1')\n    await nc.close()\nasyncio.run(m())\nprint('ok')\n",
            "rabbitmq": "import os, pika\nc = pika.BlockingConnection(pika.URLParameters(os.environ['AMQP_URL']))\nc.channel().queue_declare('q')\nc.close()\nprint('ok')\n",
        }[broker]
        out: list[str] = []

        async def collect(message):
            out.append(message.get("text", ""))

        result = run(agent_client.run(backend.socket_path(names[0]), code=code, timeout=30, on_message=collect))
        assert result["status"] == 0 and "ok" in "".join(out), "".join(out)
        pids = backend.processes(names[0])
        assert len(pids) >= 2  # the agent and the broker, found by the unit's marker
    finally:
        for name in names:
            backend.stop(name)
    for name in names:
        assert backend.processes(name) == []
        assert name not in backend.list_units()
