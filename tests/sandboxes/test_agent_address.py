"""An agent on TCP (as the kubernetes backend runs it) admits only connections that carry its unit's token.

The real agent process, on a loopback port of this machine, with a NATS broker on free
ports; no cluster needed. tests/k8s/test_backend.py shows the same through a pod.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandboxes import agent_client
from sandboxes.agent import protocol
from sandboxes.backends.base import AgentAddress
from tests.aio import run
from tests.services import PYTHON, ROOT, Service, free_port, port_open, wait_for

TOKEN = "a" * 64


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> Iterator[AgentAddress]:
    unit = tmp_path_factory.mktemp("agent-unit")
    (unit / "token").write_text(TOKEN + "\n")
    port = free_port()
    ports = {"nats": free_port(), "monitor": free_port()}
    argv = [
        PYTHON, "-m", "sandboxes.agent", "--unit-dir", str(unit), "--broker", "nats", "--ports", json.dumps(ports),
        "--listen", f"127.0.0.1:{port}", "--token-file", str(unit / "token"),
    ]  # fmt: skip
    service = Service("agent-tcp", argv)
    wait_for(lambda: port_open(port), timeout=30, what="the agent listening on TCP")
    yield AgentAddress(host="127.0.0.1", port=port, token=TOKEN)
    service.stop()


def test_the_unit_token_opens_the_agent_and_nothing_else_does(agent: AgentAddress):
    assert "stage" in run(agent_client.status(agent))
    for wrong in ("", "b" * 64, TOKEN[:-1], TOKEN + "a"):
        with pytest.raises(agent_client.AgentRefused):
            run(agent_client.status(AgentAddress(host=agent.host, port=agent.port, token=wrong)))
    # A token is never shown where an address is printed (logs, errors).
    assert TOKEN not in str(agent) and TOKEN not in repr(agent)


def test_a_refused_connection_gets_no_answer_to_its_request(agent: AgentAddress):
    """Refused before the op is read: a wrong token's 'shutdown' stops nothing."""

    async def shutdown_with_a_wrong_token() -> dict:
        reader, writer = await asyncio.open_connection(agent.host, agent.port)
        await protocol.send(writer, {"op": "shutdown", protocol.TOKEN_FIELD: "b" * 64})
        reply = await protocol.read_message(reader)
        assert await protocol.read_message(reader) is None  # and the agent closed the connection
        writer.close()
        return reply or {}

    assert run(shutdown_with_a_wrong_token()) == {"type": "error", "code": protocol.REFUSED, "message": "unauthorized"}
    assert "stage" in run(agent_client.status(agent))


def test_an_agent_on_the_network_refuses_to_start_without_a_token(tmp_path: Path):
    result = subprocess.run(
        [PYTHON, "-m", "sandboxes.agent", "--unit-dir", str(tmp_path), "--broker", "nats", "--listen", "127.0.0.1:1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "--listen needs --token-file" in result.stderr, result.stderr
