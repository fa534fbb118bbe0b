"""A broker's log stays within its cap, however much a learner makes the broker write.

The unit's folder is on the host's disk, outside the data disk's cap. RabbitMQ writes two
lines for every connection a cell opens and closes; before, the broker's output went straight
to ``broker.log`` there, so a loop of connects grew the host's disk without end. Now the broker
writes into a pipe and the agent keeps at most two files of LOG_CAP_BYTES.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from sandboxes.agent.capped_log import capped_log, log_tail
from sandboxes.backends.process import ProcessBackend
from tests.security.units import unit_running
from tests.services import wait_for

pytestmark = [pytest.mark.integration]

CONNECTS = 40


def test_a_process_writing_three_times_the_cap_leaves_at_most_two_caps_on_disk_and_its_last_line(tmp_path):
    log = tmp_path / "broker.log"
    cap = 256 * 1024
    sink, copier = capped_log(log, cap_bytes=cap)
    # A real process as the writer, 3 x cap of numbered lines, flushed as it goes.
    program = (
        "import sys\nfor i in range(60000):\n    sys.stdout.write(f'line {i:06d} ' + 'x' * 40 + '\\n')\nprint('the last line')"
    )
    writer = subprocess.Popen([sys.executable, "-c", program], stdout=sink)
    os.close(sink)
    assert writer.wait(timeout=60) == 0
    copier.join(timeout=10)
    assert not copier.is_alive()
    written = 60000 * 53 + len("the last line\n")
    assert written > 3 * cap
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    print(f"wrote {written} bytes; on disk {sizes}")
    assert set(sizes) == {"broker.log", "broker.log.1"}
    assert sum(sizes.values()) <= 2 * cap
    assert log_tail(log).endswith("the last line\n")


@pytest.mark.django_db
def test_a_cells_connect_loop_reaches_the_capped_log_not_the_host_file(celery_worker):
    backend = ProcessBackend()
    with unit_running(backend, "rabbitmq") as unit:
        beam = [
            p for pid in backend.processes(unit.name) if (p := psutil.Process(pid)).name().startswith("beam")
        ]  # the broker itself
        assert beam, "no RabbitMQ process in the unit"
        # Its output is a pipe to the agent, not a file on the host's disk.
        assert Path(f"/proc/{beam[0].pid}/fd/1").readlink().as_posix().startswith("pipe:")
        log = backend.unit_dir(unit.name) / "broker.log"
        before = log.read_text(errors="replace").count("accepting AMQP connection")
        status, output, _ = unit.run(
            f"import os, pika\nfor _ in range({CONNECTS}):\n"
            "    pika.BlockingConnection(pika.URLParameters(os.environ['AMQP_URL'])).close()\nprint('done')",
            timeout=120,
        )
        assert status == 0 and "done" in output, output

        def logged() -> int:
            return log.read_text(errors="replace").count("accepting AMQP connection") - before

        wait_for(lambda: logged() >= CONNECTS, timeout=10, what=f"{CONNECTS} connections in broker.log")
        seen = logged()
        print(f"{seen} connections logged through the pipe; broker.log {log.stat().st_size} bytes")
        assert seen >= CONNECTS


def test_the_agents_own_log_lines_stay_within_the_cap_in_the_file_the_process_backend_gives_it(tmp_path):
    """The agent's stderr is ``agent.log``, opened for appending by the process backend, beside the broker's log.

    A learner can make the agent log (each terminal opened is a line): the agent's handler keeps that file
    and ``agent.log.1`` within the cap, and the newest lines, whatever else was written to the file.
    """
    log = tmp_path / "agent.log"
    cap = 64 * 1024
    program = f"""
import logging, sys
from pathlib import Path
from sandboxes.agent.capped_log import CappedStderrHandler
print("before logging: an interpreter's own warning", file=sys.stderr, flush=True)
handler = CappedStderrHandler(Path({str(tmp_path / "agent.log.1")!r}), cap_bytes={cap})
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", handlers=[handler])
for i in range(20000):
    logging.getLogger("sandboxes.agent.terminal").info("terminal started, pid %d", 100000 + i)
logging.getLogger("sandboxes.agent.terminal").info("the last line")
"""
    with log.open("ab") as out:  # as ProcessBackend.start opens it for the agent
        written = subprocess.run(
            [sys.executable, "-c", program],
            stdout=out,
            stderr=out,
            cwd=Path(__file__).resolve().parents[2],
            timeout=60,
            check=False,
        )
    assert written.returncode == 0
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    print(sizes)
    assert set(sizes) == {"agent.log", "agent.log.1"}, sizes
    assert all(size <= cap + 200 for size in sizes.values()), sizes  # a cap, plus the line that crossed it
    assert log.read_text().rstrip().endswith("the last line")
    assert "terminal started, pid 119999" in log_tail(log, chars=cap)
