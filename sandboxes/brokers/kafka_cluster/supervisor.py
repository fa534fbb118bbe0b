"""Runs a Kafka cluster's three nodes as one foreground process, and lets the unit stop and start each one.

Started by the agent as the unit's broker (``python -I supervisor.py cluster.json``), with the
file :mod:`sandboxes.brokers.kafka_cluster.kind` writes in ``prepare``: the control address and,
per node, its id, broker port and java command line. Standard library only, run isolated (-I):
it imports nothing of the project, since it may run as the broker's own account.

HTTP on the control address (loopback of the unit, so only the unit's own cells and agent reach it):

  GET  /brokers            -> {"brokers": [{"id", "port", "state"}]}
  POST /brokers/<id>/stop  -> the same, once the node has shut down (409 when it is the last one running)
  POST /brokers/<id>/start -> the same, at once; the node's state is "starting" until its port answers

A node's state is ``running``, ``starting``, ``stopping`` or ``stopped``. The nodes stay in the
supervisor's process group, so the agent's stop (SIGTERM, then SIGKILL to the group) ends them all.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: A node's clean shutdown (leaders handed over, logs closed) takes a few seconds; past this it is killed.
STOP_TIMEOUT_S = 30.0
PATH = re.compile(r"^/brokers/(\d+)/(stop|start)$")


class Node:
    """One Kafka node (broker and controller): its process while it runs, and what it is doing."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.id = int(spec["id"])
        self.port = int(spec["port"])
        self.argv = [str(a) for a in spec["argv"]]
        self.cwd = str(spec["cwd"])
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.lock = threading.Lock()

    def start(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                return
            # Same process group as the supervisor: a stop of the unit reaches every node.
            self.proc = subprocess.Popen(
                self.argv, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=sys.stdout, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        with self.lock:
            proc = self.proc
            if proc is None or proc.poll() is not None:
                return
            self.stopping = True
            try:
                proc.terminate()  # Kafka's controlled shutdown: leadership moves away before the node goes
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            finally:
                self.stopping = False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def state(self) -> str:
        if not self.alive():
            return "stopped"
        if self.stopping:
            return "stopping"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.3):
                return "running"
        except OSError:
            return "starting"

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "port": self.port, "state": self.state()}


class Cluster:
    def __init__(self, config: dict[str, Any]) -> None:
        self.nodes = {node.id: node for node in (Node(spec) for spec in config["nodes"])}
        self.control = (str(config["control"][0]), int(config["control"][1]))
        self.changing = threading.Lock()  # one stop at a time: "not the last one running" must hold

    def describe(self) -> dict[str, Any]:
        return {"brokers": [node.describe() for node in self.nodes.values()]}

    def stop_all(self) -> None:
        for node in self.nodes.values():
            if node.alive():
                node.proc.terminate()  # type: ignore[union-attr]
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for node in self.nodes.values():
            if node.proc is None:
                continue
            try:
                node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.proc.kill()


def handler_for(cluster: Cluster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            sys.stdout.write("[cluster] " + (format % args) + "\n")

        def answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/brokers":
                self.answer(200, cluster.describe())
            else:
                self.answer(404, {"error": "not found: GET /brokers, POST /brokers/<id>/stop or /start"})

        def do_POST(self) -> None:
            match = PATH.match(self.path)
            node = cluster.nodes.get(int(match.group(1))) if match else None
            if match is None or node is None:
                self.answer(404, {"error": f"no such broker; known: {sorted(cluster.nodes)}", **cluster.describe()})
                return
            if match.group(2) == "start":
                node.start()
                self.answer(200, cluster.describe())
                return
            with cluster.changing:
                others = [n for n in cluster.nodes.values() if n is not node and n.alive() and not n.stopping]
                if node.alive() and not others:
                    self.answer(409, {"error": "the last running broker stays up", **cluster.describe()})
                    return
                node.stopping = node.alive()
            node.stop()
            self.answer(200, cluster.describe())

    return Handler


def main(config_path: str) -> int:
    cluster = Cluster(json.loads(Path(config_path).read_text()))
    server = ThreadingHTTPServer(cluster.control, handler_for(cluster))
    server.daemon_threads = True
    stopped = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    for node in cluster.nodes.values():
        node.start()
    threading.Thread(target=server.serve_forever, name="control", daemon=True).start()
    while not stopped.wait(1.0):  # a timed wait: the signal handler runs between waits
        pass
    server.shutdown()
    cluster.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
