"""A cell may start several clients of a C library with threads of their own (confluent_kafka) under the memory limit."""

from __future__ import annotations

import asyncio

from sandboxes.agent.cells import CellRunner
from sandboxes.agent.confinement import CellLimits

# Eight consumers, each with librdkafka's own threads: as many as 6.3's share-group cell starts and more.
# No broker is needed: the threads start at creation, and the cell stops reconnecting when it closes them.
MANY_CLIENTS = """
from confluent_kafka import Consumer
clients = [Consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": f"g{i}", "log_level": 0}) for i in range(8)]
for c in clients:
    c.subscribe(["t"])
for c in clients:
    c.poll(0.2)
print("clients up:", len(clients))
for c in clients:
    c.close()
"""


def test_a_cell_with_eight_librdkafka_clients_runs_within_the_default_memory_limit():
    """The agent's own runner with its default limits (the address-space cap applies without a uid too)."""
    messages: list[dict] = []

    async def collect(message: dict) -> None:
        messages.append(message)

    async def main():
        runner = CellRunner(env={}, limits=CellLimits(), uid=None, cgroup_procs=[])
        result = await runner.run(code=MANY_CLIENTS, timeout=60, on_output=collect)
        await asyncio.gather(*(t for t in asyncio.all_tasks() if t is not asyncio.current_task()))
        await runner.close()
        return result

    result = asyncio.run(main())
    output = "".join(m["text"] for m in messages)
    assert (result.status, result.reason) == (0, None), output[-2000:]
    assert "clients up: 8" in output
