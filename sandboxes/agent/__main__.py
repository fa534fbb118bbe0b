"""python -m sandboxes.agent --unit-dir DIR --broker KIND [--cell-uid N] [--cells-cgroup PROCS_FILE ...] [--broker-user NAME]
[--cell-confinement bwrap|setpriv] [--listen HOST:PORT --token-file FILE] [--socket-group GID] [--disk-mb N] [--restore]
python -m sandboxes.agent --checks-only --unit-dir DIR --broker KIND --listen HOST:PORT --token-file FILE"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from pathlib import Path

from .capped_log import CappedStderrHandler
from .cell_main import PR_SET_DUMPABLE, prctl
from .checker import Checker
from .server import Agent


def main() -> None:
    # Not dumpable: its /proc/<pid>/mem, environ and fds belong to root. In a Kubernetes pod the cells share
    # the agent's uid, and without the kernel's Yama policy (not on every kernel) /proc/<pid>/mem of a process
    # of one's own uid is open to read and write: a cell could take the agent's token or rewrite its code (and
    # so its checks' verdicts). Before any learner's process exists: the agent starts first in its unit.
    prctl(PR_SET_DUMPABLE, 0)
    parser = argparse.ArgumentParser(prog="sandboxes.agent")
    parser.add_argument("--unit-dir", type=Path, required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--cell-uid", type=int, default=None)
    parser.add_argument("--cells-cgroup", type=Path, action="append", default=[])
    # A container's agent: run a broker whose kind names no account as this one, and confine
    # cells by uid and rlimits alone (bubblewrap cannot make namespaces there without privileges).
    parser.add_argument("--broker-user", default=None)
    # The process backend's unit: the broker runs as this uid of the unit's own (not root, not the cells').
    parser.add_argument("--broker-uid", type=int, default=None)
    parser.add_argument("--cell-confinement", choices=("bwrap", "setpriv"), default="bwrap")
    # Without a network namespace of its own the broker cannot use its default ports: the backend picks them.
    parser.add_argument("--ports", type=json.loads, default=None, help='JSON, e.g. {"client": 14222}')
    # An agent reached over the network (kubernetes): TCP instead of the unit folder's socket, and
    # the unit's own token, which every connection must show (see server.py).
    parser.add_argument("--listen", default=None, help="HOST:PORT")
    parser.add_argument("--token-file", type=Path, default=None)
    # The group the platform's unprivileged web and worker belong to: the unit socket is theirs to open (0660).
    parser.add_argument("--socket-group", type=int, default=None)
    # The size cap of the unit's data folder, which the backend mounted: the broker's watermarks go under it.
    parser.add_argument("--disk-mb", type=int, default=None)
    # A unit started on a learner's kept data, which the backend sends (agent/kept_data.py) before the broker starts.
    parser.add_argument("--restore", action="store_true")
    # A Kubernetes pod's second container: the unit's exercise checks, out of the learner's reach (agent/checker.py).
    parser.add_argument("--checks-only", action="store_true")
    args = parser.parse_args()
    listen = None
    if args.listen is not None:
        host, _, port = args.listen.rpartition(":")
        listen = (host or "0.0.0.0", int(port))
    token = args.token_file.read_text().strip() if args.token_file is not None else ""
    if listen is not None and not token:
        parser.error("--listen needs --token-file: an agent on the network must not answer everyone")
    if args.checks_only and listen is None:
        parser.error("--checks-only needs --listen and --token-file: the platform reaches the checker over the pod's network")
    # Its stderr is the unit folder's agent.log (process backend), on the host's disk beside the capped data folder:
    # a learner who makes the agent log (a terminal opened again and again) must not fill that disk.
    handler = CappedStderrHandler(args.unit_dir / "agent.log.1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", handlers=[handler])
    agent: Agent | Checker
    if args.checks_only:
        assert listen is not None
        agent = Checker(broker=args.broker, listen=listen, token=token)
    else:
        agent = Agent(
            unit_dir=args.unit_dir,
            broker=args.broker,
            cell_uid=args.cell_uid,
            cells_cgroup=args.cells_cgroup,
            broker_user=args.broker_user,
            broker_uid=args.broker_uid,
            cell_confinement=args.cell_confinement,
            ports=args.ports,
            listen=listen,
            token=token,
            disk_mb=args.disk_mb,
            restore=args.restore,
            socket_gid=args.socket_group,
        )

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.done.set)
        await agent.main()

    asyncio.run(run())


if __name__ == "__main__":
    main()
