"""ActiveMQ Classic 6 as a broker kind: install check, configuration, launch, probes, snapshot."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from sandboxes.brokers import versions
from sandboxes.brokers.base import BASE_ENV, BrokerUnavailable, Console, Emit, LaunchSpec, Site
from sandboxes.brokers.jvm import JarFolder, JvmBroker

from .config import broker_xml
from .console import PATH, SESSION_COOKIE, console_classpath, console_files, console_missing

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
    cell_preload = ("json", "stomp")
    # The web console's Jetty (console), the JMX registry and server it asks the broker through (console.py).
    default_ports: ClassVar[dict[str, int]] = {"stomp": 61613, "openwire": 61616, "console": 8161, "jmx": 1099, "jmx-rmi": 1100}
    # The console opens logged in as the unit's user; it serves under the platform's path and keeps a session
    # (its forms carry a secret kept there).
    console = Console(
        port="console",
        login=(USER, PASSWORD),
        path=PATH,
        session_cookie=SESSION_COOKIE,
        # Its pages load their own scripts and run a few inline ones; nothing is fetched from elsewhere.
        csp="default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'",
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
    # The broker's classes and the console's (its own Spring MVC, Jasper, the compiled JSPs).
    metaspace_mb = 192

    def missing(self) -> list[str]:
        return [*super().missing(), *console_missing()]

    def prepare(self, *, site: Site) -> None:
        data_dir = site.data_dir
        (data_dir / "conf").mkdir(parents=True, exist_ok=True)
        (data_dir / "data").mkdir(exist_ok=True)
        (data_dir / "tmp").mkdir(exist_ok=True)
        jmx_password = console_files(data_dir / "conf")
        xml = data_dir / "conf" / "activemq.xml"
        xml.unlink(missing_ok=True)
        xml.touch(mode=0o600)  # JMX's password is in it
        xml.write_text(broker_xml(site, jmx_password=jmx_password))
        self.write_log_config(data_dir / "conf" / "log4j2.properties")

    def launch(self, *, site: Site) -> LaunchSpec:
        data_dir = site.data_dir
        conf = data_dir / "conf"
        libs = self.libs()
        argv = self.java_argv(
            heap_mb=site.limits.heap_mb,
            tmp_dir=data_dir / "tmp",
            log_config=conf / "log4j2.properties",
            classpath=f"{conf}:{libs / '*'}:{console_classpath()}",
            extra=(
                f"-Dactivemq.home={libs.parent}",
                f"-Dactivemq.base={data_dir}",
                f"-Dactivemq.conf={conf}",
                f"-Dactivemq.data={data_dir / 'data'}",
                # The JMX server's stub names this host: the unit's loopback, where it listens, not the machine's name.
                f"-Djava.rmi.server.hostname={site.bind}",
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


def image_files() -> dict[str, Path]:
    """What the kind's image holds besides the agent (sandboxes/images/build.py): ActiveMQ's jars and its web
    console (Jetty's jars and the unpacked WAR), fetched on the host by scripts/fetch-jars.sh activemq and
    activemq-console."""
    from .console import console_home, console_missing

    libs = activemq_libs()
    if not (libs / BROKER_JAR).exists():
        raise FileNotFoundError(f"ActiveMQ's jars are not in {libs}: run scripts/fetch-jars.sh activemq")
    if console_missing():
        raise FileNotFoundError(console_missing()[0])
    files = {f"activemq-libs/{jar.name}": jar for jar in sorted(libs.glob("*.jar"))}
    return {**files, "activemq-console": console_home()}
