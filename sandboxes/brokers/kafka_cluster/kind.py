"""Three Kafka nodes in one unit, as a broker kind: each node's files, the supervisor's launch, probes, snapshot, stop/start."""

from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from sandboxes.brokers.base import BASE_ENV, BrokerUnavailable, Emit, LaunchSpec, NodeActionRefused, Site
from sandboxes.brokers.jvm import log4j2_properties
from sandboxes.brokers.kafka import Kafka
from sandboxes.brokers.kafka.clients import Clients, topology
from sandboxes.brokers.kafka.config import properties_text, server_settings
from sandboxes.brokers.kafka.wire import metadata_brokers

from .replicas import replication

NODES = (1, 2, 3)
#: Each node's heap: three of them and the agent fit the unit's memory (measured: tests/brokers/test_kafka_cluster.py).
NODE_HEAP_MB = 160
SUPERVISOR = Path(__file__).with_name("supervisor.py")


def node_ports(ports: Mapping[str, int], node: int) -> dict[str, int]:
    """Node ``node``'s own ports under the names a single Kafka uses (``kafka``, ``controller``)."""
    suffix = "" if node == 1 else f"-{node}"
    return {"kafka": ports[f"kafka{suffix}"], "controller": ports[f"controller{suffix}"]}


def cluster_settings(site: Site, node: int) -> dict[str, str]:
    """server.properties of one node: the single Kafka's settings, with three voters and three replicas."""
    own = node_ports(site.ports, node)
    node_dir = site.data_dir / f"node-{node}"
    settings = server_settings(Site(data_dir=node_dir, ports=own, limits=site.limits, host=site.host, bind=site.bind))
    voters = ",".join(f"{n}@{site.bind}:{node_ports(site.ports, n)['controller']}" for n in NODES)
    settings.update(
        {
            "node.id": str(node),
            "controller.quorum.voters": voters,
            # Replicated like a production cluster, so that stopping a broker teaches something.
            "default.replication.factor": "3",
            "offsets.topic.replication.factor": "3",
            "transaction.state.log.replication.factor": "3",
            "transaction.state.log.min.isr": "2",
            "share.coordinator.state.topic.replication.factor": "3",
            "share.coordinator.state.topic.min.isr": "2",
            # A restarted broker gets its leaderships back within seconds, not five minutes: the panel shows them move.
            "leader.imbalance.check.interval.seconds": "5",
        }
    )
    return settings


class KafkaCluster(Kafka):
    """Apache Kafka 4 (KRaft): three nodes, each broker and controller, a quorum of three voters, in one unit.

    The unit's broker process is a small supervisor (supervisor.py) that runs the three
    JVMs and answers on a control port of the unit's loopback: cells stop and start a
    node through it (``CLUSTER_CONTROL_URL``), the panel's buttons through the agent.
    The jars, the JVM flags and the settings are the single Kafka's.
    """

    name = "kafka-cluster"
    title = "Apache Kafka (3 brokers)"
    cell_preload = ("json", "kafka", "kafka.admin", "kafka.errors", "confluent_kafka", "confluent_kafka.admin")
    default_ports: ClassVar[dict[str, int]] = {
        "kafka": 9092,
        "controller": 9093,
        "kafka-2": 9094,
        "controller-2": 9095,
        "kafka-3": 9096,
        "controller-3": 9097,
        "control": 9080,
    }

    def libs(self) -> Path:
        return Kafka.jars.folder("kafka")

    def missing(self) -> list[str]:
        return Kafka().missing()

    def prepare(self, *, site: Site) -> None:
        data_dir = site.data_dir
        # The supervisor runs as the broker's own account, which may not reach the project's folder
        # (a checkout under /root) nor its virtualenv: a copy beside the data, run by the system's Python.
        shutil.copyfile(SUPERVISOR, data_dir / SUPERVISOR.name)
        id_file = data_dir / "cluster-id"
        if not id_file.exists():
            id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode())
        cluster_id = id_file.read_text().strip()
        formats = []
        nodes = []
        for node in NODES:
            node_dir = data_dir / f"node-{node}"
            logs = node_dir / "kraft-logs"
            logs.mkdir(parents=True, exist_ok=True)
            (node_dir / "server.properties").write_text(properties_text(cluster_settings(site, node)))
            (node_dir / "log4j2.properties").write_text(
                log4j2_properties(pattern=f"[%d] node-{node} %p %m (%c)%n", quiet=self.quiet_loggers)
            )
            argv = [*self._node_argv(node_dir, heap_mb=NODE_HEAP_MB), "kafka.Kafka", str(node_dir / "server.properties")]
            nodes.append({"id": node, "port": node_ports(site.ports, node)["kafka"], "argv": argv, "cwd": str(node_dir)})
            if not (logs / "meta.properties").exists():
                # The three formats run side by side: each is a JVM start of a few seconds.
                formats.append(
                    subprocess.Popen(
                        self._format_argv(node_dir, cluster_id),
                        env=dict(BASE_ENV),
                        cwd=str(node_dir),
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                    )
                )
        for proc in formats:
            out, _ = proc.communicate(timeout=90)
            if proc.returncode != 0:
                raise RuntimeError(f"kafka storage format failed: {out[-2000:]}")
        config = {"control": [site.bind, site.ports["control"]], "nodes": nodes}
        (data_dir / "cluster.json").write_text(json.dumps(config, indent=1))

    def _node_argv(self, node_dir: Path, *, heap_mb: int) -> list[str]:
        return self._java_argv(node_dir, heap_mb=heap_mb)

    def launch(self, *, site: Site) -> LaunchSpec:
        # -I: the supervisor imports nothing of the project and reads no environment of the Python path.
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
        argv = (python, "-I", str(site.data_dir / SUPERVISOR.name), str(site.data_dir / "cluster.json"))
        return LaunchSpec(argv=argv, env=dict(BASE_ENV), cwd=str(site.data_dir), stop_timeout=40.0)

    def probe_ready(self, *, host: str, ports: Mapping[str, int]) -> bool:
        # Ready when all three brokers are registered and unfenced: a topic with three replicas can be made.
        try:
            return metadata_brokers(host, ports["kafka"], timeout=0.5) >= len(NODES)
        except (OSError, struct.error, ValueError):
            return False

    def bootstrap(self, host: str, ports: Mapping[str, int]) -> str:
        """Every node's address: a client starts even while the first broker is stopped."""
        return ",".join(f"{host}:{node_ports(ports, n)['kafka']}" for n in NODES)

    def connection_env(self, *, host: str, ports: Mapping[str, int]) -> dict[str, str]:
        return {"BOOTSTRAP_SERVERS": self.bootstrap(host, ports), "CLUSTER_CONTROL_URL": f"http://{host}:{ports['control']}"}

    def broker_version(self, *, host: str, ports: Mapping[str, int]) -> str | None:
        for node in NODES:
            found = super().broker_version(host=host, ports=node_ports(ports, node))
            if found:
                return found
        return None

    def tap(self, *, host: str, ports: Mapping[str, int], emit: Emit, stop: threading.Event) -> None:
        from sandboxes.brokers.kafka.tap import KafkaTap

        bootstrap = self.bootstrap(host, ports)

        class ClusterTap(KafkaTap):
            broker = "kafka-cluster"

            def bootstrap(self) -> str:
                return bootstrap

            def origin(self, tp: Any) -> dict[str, Any]:
                # The node that led the partition when the tap read it (its metadata, refreshed as leaders move).
                leader = self.clients.consumer._client.cluster.leader_for_partition(tp) if self.clients else None
                return {"node": str(leader)} if leader is not None and leader >= 0 else {}

        ClusterTap(host=host, ports=ports, emit=emit, stop=stop).run()

    def snapshot(self, *, host: str, ports: Mapping[str, int]) -> dict[str, Any]:
        nodes = self.nodes(host=host, ports=ports)
        key = (host, ports["kafka"])
        with self._snapshot_lock:
            clients = self._snapshot_clients.get(key)
            try:
                if clients is None:
                    clients = self._snapshot_clients[key] = Clients(self.bootstrap(host, ports), role="snapshot")
                data = topology(clients)
                return replication(clients, data, nodes=nodes)
            except Exception as exc:
                self._snapshot_clients.pop(key, None)
                if clients is not None:
                    clients.close()
                raise BrokerUnavailable(f"Kafka cluster at {self.bootstrap(host, ports)}: {exc!r}") from exc

    def nodes(self, *, host: str, ports: Mapping[str, int]) -> list[dict[str, Any]]:
        """Each node as the supervisor sees it: {"id", "port", "state"} (running, starting, stopping, stopped)."""
        try:
            with urllib.request.urlopen(f"http://{host}:{ports['control']}/brokers", timeout=2) as answer:
                return list(json.load(answer)["brokers"])
        except (OSError, ValueError, KeyError) as exc:
            raise BrokerUnavailable(f"the cluster's supervisor does not answer: {exc!r}") from exc

    def node_action(self, *, host: str, ports: Mapping[str, int], node: int, action: str) -> dict[str, Any]:
        if action not in ("stop", "start") or node not in NODES:
            raise NodeActionRefused(f"unknown action {action!r} or broker {node!r}")
        request = urllib.request.Request(f"http://{host}:{ports['control']}/brokers/{node}/{action}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return dict(json.load(answer))
        except urllib.error.HTTPError as refused:
            body = json.loads(refused.read() or b"{}")
            raise NodeActionRefused(str(body.get("error") or refused)) from refused
        except (OSError, ValueError) as exc:
            raise BrokerUnavailable(f"the cluster's supervisor does not answer: {exc!r}") from exc
