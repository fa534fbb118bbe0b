"""What a learner reads when a cell fails, on real tracebacks of the real client libraries.

Each cell connects the way a lesson's cell does, through its connection variable,
to a port on which nothing listens, and runs through the agent's real cell runner
(the code learners' cells run under, minus the sandbox's walls).
"""

from __future__ import annotations

import asyncio
import linecache
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from sandboxes.agent import cell_hints, cell_tracebacks
from sandboxes.agent.cells import UNIT_MARKER, CellResult, CellRunner
from sandboxes.agent.confinement import CellLimits
from sandboxes.brokers import broker_names, get_broker

#: Text that says where the server keeps its Python: none of it may reach a learner.
SERVER_PATHS = ("/root/", ".venv", "site-packages", "/usr/lib/python", sys.prefix, sys.base_prefix, os.path.realpath(sys.prefix))


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port of this machine that is bound (nobody else gets it) and not listening: connections are refused."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def run_cell(code: str, env: dict[str, str], *, timeout: float = 30) -> tuple[CellResult, str]:
    async def go() -> tuple[CellResult, str]:
        runner = CellRunner(env={**env, UNIT_MARKER: "test"}, limits=CellLimits(), uid=None, cgroup_procs=[])
        chunks: list[str] = []
        tail: list[str] = []

        async def collect(message: dict[str, Any]) -> None:
            # The runner sends the output's head as it comes and, past it, a rolling tail (the last one counts).
            if message.get("tail"):
                tail[:] = [str(message.get("text", ""))]
            else:
                chunks.append(str(message.get("text", "")))

        try:
            result = await runner.run(code=code, timeout=timeout, on_output=collect)
            # The runner starts the next warm process after each run: let it start, so that close() ends it.
            await asyncio.gather(*(asyncio.all_tasks() - {asyncio.current_task()}))
        finally:
            await runner.close()
        return result, "".join(chunks + tail)

    return asyncio.run(go())


def assert_learners_view(output: str, *, line: int, exception: str, folded: str) -> None:
    assert f'File "<cell>", line {line}, in <module>' in output, output
    assert exception in output.splitlines()[-1], output
    assert folded in output, output
    for path in SERVER_PATHS:
        assert path not in output, f"{path!r} shown to the learner:\n{output}"


# kafka-python 3 retries a refused address for bootstrap_timeout_ms (30 s by default), as long as the run may take.
KAFKA = """import os
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"], bootstrap_timeout_ms=3000)
"""
RABBITMQ = """import os
import pika
connection = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
"""
RABBITMQ_API = """import os, urllib.request
from urllib.parse import urlsplit
api = urlsplit(os.environ["RABBITMQ_API_URL"])
urllib.request.urlopen(f"http://{api.hostname}:{api.port}/api/queues", timeout=5)
"""
NATS = """import asyncio, os
import nats
async def main():
    await nats.connect(os.environ["NATS_URL"], max_reconnect_attempts=1, connect_timeout=2)
asyncio.run(main())
"""
ACTIVEMQ = """import os
import stomp
conn = stomp.Connection([(os.environ["STOMP_HOST"], int(os.environ["STOMP_PORT"]))])
conn.connect(os.environ["STOMP_USER"], os.environ["STOMP_PASSWORD"], wait=True)
"""


@pytest.mark.parametrize(
    ("broker", "code", "line", "exception", "folded", "variables"),
    [
        ("kafka", KAFKA, 3, "kafka.errors.KafkaTimeoutError", "frames inside kafka-python", ["BOOTSTRAP_SERVERS"]),
        ("rabbitmq", RABBITMQ, 3, "pika.exceptions.AMQPConnectionError", "frames inside pika", ["AMQP_URL"]),
        ("rabbitmq", RABBITMQ_API, 4, "urllib.error.URLError", "frames inside the standard library", ["RABBITMQ_API_URL"]),
        ("nats", NATS, 5, "nats.errors.NoServersError", "frames inside nats-py", ["NATS_URL"]),
        (
            "activemq",
            ACTIVEMQ,
            4,
            "stomp.exception.ConnectFailedException",
            "frames inside stomp.py",
            ["STOMP_HOST", "STOMP_PORT"],
        ),
    ],
    ids=["kafka", "rabbitmq", "rabbitmq-api", "nats", "activemq"],
)
def test_a_wrong_port_shows_the_learners_frames_and_a_hint_naming_the_variable(
    closed_port, broker, code, line, exception, folded, variables
):
    kind = get_broker(broker)
    # The cell's variables as the broker kind gives them, every port one that refuses.
    env = kind.connection_env(host="localhost", ports=kind.ports(dict.fromkeys(kind.default_ports, closed_port)))
    result, output = run_cell(code, env)
    assert result.status == 1, output
    assert_learners_view(output, line=line, exception=exception, folded=folded)
    assert result.hint == {"code": "address", "variables": variables}


def test_a_cell_that_runs_out_of_time_retrying_still_gets_its_hint(closed_port):
    """nats-py retries for two minutes and logs each refused attempt: the logged tracebacks are folded and give the hint."""
    code = 'import asyncio, os\nimport nats\nasyncio.run(nats.connect(os.environ["NATS_URL"]))\n'
    result, output = run_cell(code, {"NATS_URL": f"nats://localhost:{closed_port}"}, timeout=4)
    assert result.reason == "timeout"
    assert "ConnectionRefusedError" in output
    for path in SERVER_PATHS:
        assert path not in output, f"{path!r} shown to the learner:\n{output}"
    assert result.hint == {"code": "address", "variables": ["NATS_URL"]}


def test_a_variable_the_sandbox_does_not_have_is_named_with_the_one_it_has():
    result, output = run_cell('import os\nservers = os.environ["KAFKA_BROKERS"]\n', {"BOOTSTRAP_SERVERS": "localhost:9092"})
    assert "KeyError: 'KAFKA_BROKERS'" in output
    assert result.hint == {"code": "variable", "variables": ["BOOTSTRAP_SERVERS"], "name": "KAFKA_BROKERS"}


def test_a_cell_that_succeeds_gets_no_hint_even_when_it_logged_a_mistake():
    code = 'import logging, os\ntry:\n    os.environ["NOPE"]\nexcept KeyError:\n    logging.exception("no")\nprint("fine")\n'
    result, output = run_cell(code, {"BOOTSTRAP_SERVERS": "localhost:9092"})
    assert result.status == 0 and result.hint is None
    assert 'File "<cell>", line 3' in output


def test_errors_that_are_not_connection_mistakes_keep_their_traceback_and_get_no_hint():
    result, output = run_cell("def f(n):\n    return f(n + 1)\n\nf(0)\n", {"BOOTSTRAP_SERVERS": "localhost:9092"})
    assert result.hint is None
    assert output.count('File "<cell>", line 2, in f') == 3
    assert "[Previous line repeated" in output
    assert output.rstrip().endswith("RecursionError: maximum recursion depth exceeded")
    result, output = run_cell("x = (\n", {"BOOTSTRAP_SERVERS": "localhost:9092"})
    assert 'File "<cell>", line 1' in output and "SyntaxError" in output
    assert result.hint is None


def test_an_exception_the_learner_handled_and_reraised_keeps_both_parts():
    code = "try:\n    {}['k']\nexcept KeyError as e:\n    raise ValueError('bad') from e\n"
    linecache.cache[cell_tracebacks.CELL] = (len(code), None, code.splitlines(True), cell_tracebacks.CELL)
    try:
        exec(compile(code, cell_tracebacks.CELL, "exec"), {})
    except ValueError as exc:
        text = cell_tracebacks.format_exception(exc, exc.__traceback__.tb_next)
    assert 'File "<cell>", line 2' in text and 'File "<cell>", line 4' in text
    assert "direct cause" in text and text.rstrip().endswith("ValueError: bad")


def test_every_variable_a_hint_can_name_is_one_that_some_broker_gives_its_cells():
    given = {
        name
        for kind in broker_names()
        for name in get_broker(kind).connection_env(host="localhost", ports=get_broker(kind).ports(None))
    }
    named = {v for table in (cell_hints.ADDRESS_VARIABLES, cell_hints.LOGIN_VARIABLES) for names in table.values() for v in names}
    assert named <= given, named - given


def test_what_comes_back_through_the_hint_pipe_is_checked():
    assert cell_hints.hint_parse(b'{"code": "address", "variables": ["NATS_URL"]}') == {
        "code": "address",
        "variables": ["NATS_URL"],
    }
    for garbage in (b"garbage", b'{"code": "rm -rf", "variables": ["X"]}', b'{"code": "address", "variables": ["<b>"]}', b"[]"):
        assert cell_hints.hint_parse(garbage) is None
