"""Apache Kafka 4 in KRaft mode, as a broker kind: install check, storage, launch, probes, snapshot."""

from __future__ import annotations

import base64
import struct
import subprocess
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from sandboxes.brokers import gettext_noop, versions
from sandboxes.brokers.base import BASE_ENV, BrokerUnavailable, Emit, LaunchSpec, Site
from sandboxes.brokers.class_archive import archive_flags
from sandboxes.brokers.jvm import JarFolder, JvmBroker, java_binary

from .clients import Clients, topology
from .config import QUIET_LOGGERS, server_properties
from .wire import metadata_brokers, metadata_release, supported_features

VERSION = versions.version("kafka")
CORE_JAR = f"kafka_2.13-{VERSION}.jar"


class Kafka(JvmBroker):
    name = "kafka"
    title = "Apache Kafka"
    cell_preload = ("json", "kafka", "kafka.admin", "kafka.errors", "confluent_kafka", "confluent_kafka.admin")
    default_ports: ClassVar[dict[str, int]] = {"kafka": 9092, "controller": 9093}
    # Kafka ships no web console; the maintained ones (kafbat/kafka-ui, AKHQ) are released as Docker images and
    # GitHub downloads only: of kafbat's, Maven Central holds its serde-api alone, and AKHQ nothing.
    console_note = gettext_noop(
        "У Kafka нет своей веб-консоли, а поддерживаемые веб-интерфейсы для неё (kafbat/kafka-ui, AKHQ) "
        "не публикуются в реестрах пакетов, из которых собирается платформа."
    )
    client = ("kafka", "kafka-python")
    jars = JarFolder(
        core=CORE_JAR,
        variable="KAFKA_LIBS",
        home_variable="KAFKA_HOME",
        needed=(("log4j-slf4j-impl-*.jar", "without this slf4j binding the broker would log nothing"),),
    )
    log_pattern = "[%d] %p %m (%c)%n"
    quiet_loggers = QUIET_LOGGERS

    def __init__(self) -> None:
        self._snapshot_lock = threading.Lock()
        self._snapshot_clients: dict[tuple[str, int], Clients] = {}

    def prepare(self, *, site: Site) -> None:
        data_dir = site.data_dir
        logs = data_dir / "kraft-logs"
        logs.mkdir(parents=True, exist_ok=True)
        (data_dir / "server.properties").write_text(server_properties(site))
        self.write_log_config(data_dir / "log4j2.properties")
        if not (logs / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            result = subprocess.run(
                self._format_argv(data_dir, cluster_id),
                env=dict(BASE_ENV),
                cwd=str(data_dir),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"kafka storage format failed: {(result.stderr or result.stdout)[-2000:]}")

    def launch(self, *, site: Site) -> LaunchSpec:
        argv = (
            *self._java_argv(site.data_dir, heap_mb=site.limits.heap_mb),
            "kafka.Kafka",
            str(site.data_dir / "server.properties"),
        )
        return LaunchSpec(argv=argv, env=dict(BASE_ENV), cwd=str(site.data_dir), stop_timeout=15.0)

    def _format_argv(self, folder: Path, cluster_id: str) -> list[str]:
        """Kafka's StorageTool formatting the log folder of ``folder/server.properties`` for ``cluster_id``."""
        return [
            *self._java_argv(folder, heap_mb=128),
            "kafka.tools.StorageTool",
            "format",
            # One argument, not two: an id may start with "-" (1 in 32), which argparse takes for an option.
            f"--cluster-id={cluster_id}",
            "-c",
            str(folder / "server.properties"),
        ]

    def _java_argv(self, data_dir: Path, *, heap_mb: int) -> list[str]:
        return self.java_argv(
            heap_mb=heap_mb,
            tmp_dir=data_dir,
            log_config=data_dir / "log4j2.properties",
            classpath=str(self.libs() / "*"),
            extra=(
                "-XX:MaxDirectMemorySize=64m",
                f"-Dkafka.logs.dir={data_dir}",
                *archive_flags(self.libs(), java_binary() or "java"),  # class_archive.py
            ),
        )

    def probe_ready(self, *, host: str, ports: Mapping[str, int]) -> bool:
        # A broker lists itself in metadata only once it is unfenced and serving.
        try:
            return metadata_brokers(host, ports["kafka"], timeout=0.5) > 0
        except (OSError, struct.error, ValueError):
            return False

    def connection_env(self, *, host: str, ports: Mapping[str, int]) -> dict[str, str]:
        return {"BOOTSTRAP_SERVERS": f"{host}:{ports['kafka']}"}

    def broker_version(self, *, host: str, ports: Mapping[str, int]) -> str | None:
        # Kafka's protocol carries no software version; the highest metadata.version the broker
        # supports names its release line (4.4-IV2 is Kafka 4.4), which is what it can say.
        try:
            supported = supported_features(host, ports["kafka"], timeout=1.0)
        except (OSError, struct.error, ValueError, IndexError):
            return None
        level = supported.get("metadata.version", (0, -1))[1]
        return metadata_release(level)

    def tap(self, *, host: str, ports: Mapping[str, int], emit: Emit, stop: threading.Event) -> None:
        from .tap import KafkaTap

        KafkaTap(host=host, ports=ports, emit=emit, stop=stop).run()

    def snapshot(self, *, host: str, ports: Mapping[str, int]) -> dict[str, Any]:
        key = (host, ports["kafka"])
        with self._snapshot_lock:
            clients = self._snapshot_clients.get(key)
            try:
                if clients is None:
                    clients = self._snapshot_clients[key] = Clients(f"{host}:{ports['kafka']}", role="snapshot")
                return topology(clients)
            except Exception as exc:
                self._snapshot_clients.pop(key, None)
                if clients is not None:
                    clients.close()
                raise BrokerUnavailable(f"Kafka at {host}:{ports['kafka']}: {exc!r}") from exc


def kafka_libs() -> Path:
    """The folder holding Kafka's jars: ``KAFKA_LIBS``, else ``KAFKA_HOME/libs``, else the cache of fetch-jars.sh."""
    return Kafka().libs()


def image_files() -> dict[str, Path]:
    """What the kind's image holds besides the agent (sandboxes/images/build.py): Kafka's jars, fetched on
    the host by scripts/fetch-jars.sh kafka, the same the process backend runs."""
    libs = kafka_libs()
    if not (libs / CORE_JAR).exists():
        raise FileNotFoundError(f"Kafka's jars are not in {libs}: run scripts/fetch-jars.sh kafka")
    return {f"kafka-libs/{jar.name}": jar for jar in sorted(libs.glob("*.jar"))}
