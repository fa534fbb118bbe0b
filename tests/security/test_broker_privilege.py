"""Least privilege for brokers: in the process backend no broker runs as root, nor as its cells' uid.

Started through the real agent (process backend, isolated units), read from /proc: the
broker's processes run as an unprivileged uid that is not the uid learners' cells get, so
a cell can neither signal the broker nor touch its files, and a broker bug is not root's.
Every broker, RabbitMQ included, runs as the unit's own broker uid: one unit's broker shares
no uid with another's (before, every RabbitMQ ran as Debian's ``rabbitmq`` account). The Docker
backend runs them as its images' ``broker`` account, the container being the wall.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from sandboxes.backends import cgroups
from sandboxes.backends.process import ProcessBackend
from tests.security.units import Unit

pytestmark = [pytest.mark.integration]

#: The cheap brokers and one JVM (ActiveMQ and Kafka start the same way, through jvm.py).
BROKERS = ("nats", "redis", "rabbitmq", "kafka")


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])  # the real uid; effective and saved follow it
    raise AssertionError(f"no Uid line for {pid}")


def _broker_processes(backend: ProcessBackend, unit: Unit) -> dict[int, tuple[int, str]]:
    """{pid: (uid, command)} of the unit's main cgroup other than its agent: the broker and its helpers.

    Cells (and their bubblewrap wrappers) live in the unit's other cgroup, so nothing of the
    broker can hide among them.
    """
    agent = backend._agent_pid(unit.name)
    found = {}
    for procs in cgroups.UnitCgroups(backend.instance, unit.name).procs_files("main"):
        for pid in map(int, procs.read_text().split()):
            if pid == agent:
                continue
            try:
                uid = _uid(pid)
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # ended meanwhile
            found[pid] = (uid, command[:120])
    return found


def test_brokers_run_as_an_unprivileged_uid_that_is_not_the_cells(units_cleanup):
    backend = ProcessBackend()
    with concurrent.futures.ThreadPoolExecutor(len(BROKERS)) as pool:
        futures = {broker: pool.submit(Unit, backend, broker) for broker in BROKERS}
    units = {broker: future.result() for broker, future in futures.items()}
    try:
        for broker, unit in units.items():
            processes = _broker_processes(backend, unit)
            assert processes, f"{broker}: no broker process found in the unit"
            cell_uid = backend.cell_uid(unit.name)
            print(broker, {pid: uid for pid, (uid, _) in processes.items()}, "cells", cell_uid)
            for pid, (uid, command) in processes.items():
                assert uid != 0, f"{broker}: {command!r} (pid {pid}) runs as root"
                assert uid != cell_uid, f"{broker}: {command!r} (pid {pid}) runs as the cells' uid {uid}"
                # The unit's own: no other unit's broker (of any kind) shares it.
                assert uid == backend.broker_uid(unit.name), f"{broker}: {command!r} (pid {pid}) runs as {uid}, not the unit's"
        # The cells' uid the brokers were compared with is the one a cell really gets.
        status, output, _ = units["nats"].run("import os; print(os.getuid())")
        assert status == 0, output
        assert int(output.split()[0]) == backend.cell_uid(units["nats"].name)
    finally:
        for unit in units.values():
            unit.stop()
