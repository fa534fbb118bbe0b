"""ActiveMQ Classic 6 as a broker kind: install check, configuration, launch, probes, snapshot."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from sandboxes.brokers import gettext_noop, versions
from sandboxes.brokers.base import BASE_ENV, BrokerUnavailable, Emit, LaunchSpec, Site
from sandboxes.brokers.jvm import JarFolder, JvmBroker

from .config import broker_xml

VERSION = versions.version("activemq")
BROKER_JAR = f"activemq-broker-{VERSION}.jar"
#: What activemq.jar's launcher runs: the console's "start" command on an xbean: URI.
MAIN = "org.apache.activemq.console.Main"
# No authentication plugin: any login is accepted; these are the documented ones (stomp_session.py uses them too).
USER, PASSWORD = "admin", "admin"

# Java 17 closes internals that Spring/XStream reflect on; ActiveMQ's own start script opens the same ones.
_OPENS = [
    "java.base/java.lang=ALL-UNNAMED",
    "java.base/java.util=ALL-UNNAMED",
    "java.base/java.util.concurrent=ALL-UNNAMED",
    "java.base/java.net=ALL-UNNAMED",
    "java.base/java.security=ALL-UNNAMED",
]


class ActiveMQ(JvmBroker):
    name = "activemq"
    title = "Apache ActiveMQ"
    default_ports: ClassVar[dict[str, int]] = {"stomp": 61613, "openwire": 61616}
    # The web console is a webapp for Jetty with JSP and JMX; the unit runs the broker's jars alone in a 256 MB
    # heap, without Jetty or JMX, so there is none to show.
    console_note = gettext_noop(
        "Песочница запускает брокер ActiveMQ без встроенного веб-сервера Jetty, поэтому его веб-консоли здесь нет."
    )
    client = ("stomp", "stomp.py")
    # The STOMP transformer that renders advisory messages needs xstream and jettison; without them the tap sees nothing.
    jars = JarFolder(
        core=BROKER_JAR,
        variable="ACTIVEMQ_LIBS",
        needed=tuple((p, "ActiveMQ needs it to send advisories over STOMP") for p in ("xstream-*.jar", "jettison-*.jar")),
    )
    log_pattern = "%d{ISO8601} %-5p %m [%c{1}]%n"
    quiet_loggers = ("org.springframework", "org.apache.xbean")
    metaspace_mb = 96

    def prepare(self, *, site: Site) -> None:
        data_dir = site.data_dir
        (data_dir / "conf").mkdir(parents=True, exist_ok=True)
        (data_dir / "data").mkdir(exist_ok=True)
        (data_dir / "tmp").mkdir(exist_ok=True)
        (data_dir / "conf" / "activemq.xml").write_text(broker_xml(site))
        self.write_log_config(data_dir / "conf" / "log4j2.properties")

    def launch(self, *, site: Site) -> LaunchSpec:
        data_dir = site.data_dir
        conf = data_dir / "conf"
        libs = self.libs()
        argv = self.java_argv(
            heap_mb=site.limits.heap_mb,
            tmp_dir=data_dir / "tmp",
            log_config=conf / "log4j2.properties",
            classpath=f"{conf}:{libs / '*'}",
            extra=(
                f"-Dactivemq.home={libs.parent}",
                f"-Dactivemq.base={data_dir}",
                f"-Dactivemq.conf={conf}",
                f"-Dactivemq.data={data_dir / 'data'}",
                *(f"--add-opens={o}" for o in _OPENS),
            ),
        )
        argv += [MAIN, "start", f"xbean:file:{conf / 'activemq.xml'}"]
        return LaunchSpec(argv=tuple(argv), env=dict(BASE_ENV), cwd=str(data_dir), stop_timeout=10.0)

    def probe_ready(self, *, host: str, ports: Mapping[str, int]) -> bool:
        from .stomp_session import StompSession

        try:
            with StompSession(host, ports["stomp"], timeout=0.5):
                return True
        except (OSError, ValueError, BrokerUnavailable):
            return False

    def connection_env(self, *, host: str, ports: Mapping[str, int]) -> dict[str, str]:
        return {
            "STOMP_HOST": host,
            "STOMP_PORT": str(ports["stomp"]),
            "STOMP_USER": USER,
            "STOMP_PASSWORD": PASSWORD,
            "OPENWIRE_URL": f"tcp://{host}:{ports['openwire']}",
        }

    def broker_version(self, *, host: str, ports: Mapping[str, int]) -> str | None:
        from .stomp_session import StompSession

        # STOMP's CONNECTED frame names the server: "ActiveMQ/6.3.1".
        try:
            with StompSession(host, ports["stomp"], timeout=1.0) as s:
                product, _, said = s.server.partition("/")
        except (OSError, ValueError, BrokerUnavailable):
            return None
        return said if product == "ActiveMQ" and said else None

    def tap(self, *, host: str, ports: Mapping[str, int], emit: Emit, stop: threading.Event) -> None:
        from .tap import ActiveMQTap

        ActiveMQTap(host=host, ports=ports, emit=emit, stop=stop).run()

    def snapshot(self, *, host: str, ports: Mapping[str, int]) -> dict[str, Any]:
        from .stomp_session import StompSession, row, statistics

        try:
            with StompSession(host, ports["stomp"], timeout=1.0) as s:
                queues = [row(stats) for stats in statistics(s, "queue")]
                topics = [row(stats) for stats in statistics(s, "topic")]
        except (OSError, ValueError) as exc:  # timeouts included
            raise BrokerUnavailable(f"ActiveMQ statistics: {exc}") from exc
        return {
            "broker": self.name,
            "queues": sorted(queues, key=lambda r: r["name"]),
            "topics": sorted(topics, key=lambda r: r["name"]),
        }


def activemq_libs() -> Path:
    """The folder holding ActiveMQ's jars: ``ACTIVEMQ_LIBS``, else the cache of fetch-jars.sh."""
    return ActiveMQ().libs()
