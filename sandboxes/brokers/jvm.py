"""What the two Java brokers (Kafka, ActiveMQ) share: finding java, one JVM command line, Log4j 2 to stdout.

Plain standard library only: the agent imports this inside sandbox units.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from . import versions
from .base import BASE_ENV, BrokerKind, missing_client

# One small broker per unit: the serial collector and the C1 compiler start fastest and keep
# the footprint low (measured on 2 cores: Kafka launch to ready in about 3 s); throughput is
# not the point here. Class data sharing on.
JVM_FLAGS = (
    "-Xms32m",
    "-Xss512k",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-Djava.awt.headless=true",
)


def java_binary() -> str | None:
    """The java to run JVM brokers with: $JAVA_HOME's, else the one on the brokers' PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").exists():
        return str(Path(java_home, "bin", "java"))
    return shutil.which("java", path=BASE_ENV["PATH"])


def missing_java() -> list[str]:
    """[] when a java is there, else the message saying how to install one."""
    return [] if java_binary() else ["java not found: install the Debian package openjdk-17-jre-headless"]


def log4j2_properties(*, pattern: str, quiet: Iterable[str] = ()) -> str:
    """A Log4j 2 configuration (properties format: no extra jar) logging to stdout, ``quiet`` loggers at WARN."""
    text = f"""# Written by Broker Academy: the broker logs to stdout, which the agent keeps.
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = {pattern}
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
"""
    return text + "".join(f"logger.q{i}.name = {name}\nlogger.q{i}.level = WARN\n" for i, name in enumerate(quiet))


@dataclass(frozen=True, slots=True)
class JarFolder:
    """Where a Java broker's jars are: the folder a variable names, else the cache scripts/fetch-jars.sh fills.

    ``core`` is the jar whose presence says the broker's jars are there; ``needed``
    are further jars it cannot work without, as (glob, what goes wrong without it);
    ``home_variable`` names an installation whose ``libs`` folder to use instead of the cache.
    """

    core: str
    variable: str
    needed: tuple[tuple[str, str], ...] = ()
    home_variable: str | None = None

    def folder(self, kind: str) -> Path:
        """The folder of broker ``kind``'s jars."""
        if os.environ.get(self.variable):
            return Path(os.environ[self.variable])
        if self.home_variable and os.environ.get(self.home_variable):
            return Path(os.environ[self.home_variable]) / "libs"
        return versions.home(kind) / "libs"


class JvmBroker(BrokerKind, abstract=True):
    """A broker kind that runs on the JVM from a folder of jars, logging through Log4j 2.

    A subclass sets :attr:`client` (the Python module and PyPI package its tap
    needs), :attr:`jars`, :attr:`log_pattern`, :attr:`quiet_loggers` and :attr:`metaspace_mb`; it builds
    its command lines with :meth:`java_argv` and writes its logging configuration
    with :meth:`write_log_config`. The jars are fetched by scripts/fetch-jars.sh
    into the Broker Academy cache at the version pinned in :mod:`sandboxes.brokers.versions`.
    """

    client: ClassVar[tuple[str, str]]
    jars: ClassVar[JarFolder]
    log_pattern: ClassVar[str]
    quiet_loggers: ClassVar[tuple[str, ...]] = ()
    metaspace_mb: ClassVar[int] = 128

    def libs(self) -> Path:
        """The folder holding the broker's jars (see :class:`JarFolder`)."""
        return self.jars.folder(self.name)

    def missing_jars(self) -> list[str]:
        """Return one actionable message per jar (or folder of jars) that is not in place; [] when all are."""
        libs = self.libs()
        if not (libs / self.jars.core).exists():
            return [
                f"{self.title} {versions.version(self.name)} jars not found in {libs}: run scripts/fetch-jars.sh "
                f"{self.name} (needs maven), or set {self.jars.variable} to a folder with them"
            ]
        return [
            f"no {pattern} in {libs}: {why}; rerun scripts/fetch-jars.sh {self.name}"
            for pattern, why in self.jars.needed
            if not any(libs.glob(pattern))
        ]

    def missing(self) -> list[str]:
        return [*self.missing_jars(), *missing_java(), *missing_client(*self.client)]

    def write_log_config(self, path: Path) -> None:
        """Write the broker's Log4j 2 configuration to ``path``."""
        path.write_text(log4j2_properties(pattern=self.log_pattern, quiet=self.quiet_loggers))

    def java_argv(self, *, heap_mb: int, tmp_dir: Path, log_config: Path, classpath: str, extra: Iterable[str] = ()) -> list[str]:
        """The java command line up to the main class: heap, shared flags, ``extra`` (-D and -XX options), classpath."""
        return [
            java_binary() or "java",
            f"-Xmx{heap_mb}m",
            f"-XX:MaxMetaspaceSize={self.metaspace_mb}m",
            *JVM_FLAGS,
            f"-Djava.io.tmpdir={tmp_dir}",
            f"-Dlog4j2.configurationFile={log_config}",
            *extra,
            "-cp",
            classpath,
        ]
