"""The agent client gives up on a run the agent never ends: a wedged agent cannot hold a web task forever."""

from __future__ import annotations

import asyncio
import time

import pytest

from sandboxes import agent_client
from tests.aio import run


def test_a_run_the_agent_never_ends_is_given_up_after_its_limit_and_the_slack(tmp_path, monkeypatch):
    # A stand-in for a wedged agent, on purpose: it takes the request and never answers.
    monkeypatch.setattr(agent_client, "RUN_DEADLINE_SLACK_S", 0.5)
    path = tmp_path / "agent.sock"

    async def scenario() -> float:
        async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()

        server = await asyncio.start_unix_server(hang, path=str(path))
        async with server:

            async def ignore(_: dict) -> None:
                return None

            began = time.monotonic()
            with pytest.raises(agent_client.AgentUnavailable, match="did not end the run"):
                # Bounded here too, so that a client without a deadline fails this test instead of hanging it.
                await asyncio.wait_for(agent_client.run(path, code="print(1)", timeout=0.5, on_message=ignore), 20)
            return time.monotonic() - began

    assert run(scenario()) < 10
