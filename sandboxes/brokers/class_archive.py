"""Kafka's classes from one archive file instead of its jars: AppCDS, made once by the install step.

Most of a Kafka broker's start is the JVM loading, parsing and verifying several thousand classes
from its jars. A dynamic class-data archive (JDK 13+: ``-XX:ArchiveClassesAtExit`` while a broker
runs once, then ``-XX:SharedArchiveFile``) maps them from one file, already parsed and verified,
and the page cache shares that file between every Kafka JVM on the machine. Measured here (2 cores):
a single broker from launch to ready 5.4-6.1 s and 4.4-5.0 s of the broker JVM's CPU without it,
3.4-3.9 s and 2.7-3.2 s with it.

``make install`` runs ``python -m sandboxes.brokers.class_archive``: as root, it starts Kafka once through
the agent in a network namespace of its own (as a unit is started), lets it stop cleanly (the JVM
writes the archive as it exits) and puts the file beside the jars. Its name holds a key of the JVM
and the jars (:func:`archive_path`), so a JVM or jar upgrade means a new name: until the install step
runs again the broker simply starts without one (a stale archive would only be refused by the JVM).

ActiveMQ has none: its class path begins with the unit's own conf folder, which the JVM would have to
find equal, and empty, when it made the archive. Plain standard library only: the agent imports this.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: The agent adds ``-XX:ArchiveClassesAtExit=<this variable's value>`` to a Kafka JVM it launches (the install step).
DUMP_VARIABLE = "BA_CLASS_ARCHIVE_DUMP"


def _key(libs: Path, java: str) -> str:
    """What the archive is only good for: this JVM (its binary and libjvm) and these jars, each by name, size and
    time. Not by folder: a unit sees the install cache elsewhere (agent/mounts.py), and the JVM accepts a class
    path moved as a whole."""
    digest = hashlib.sha256()
    real = Path(os.path.realpath(java))
    jvm_files = [real, *sorted(real.parent.parent.glob("lib/server/libjvm.so"))]
    for path in [*jvm_files, *sorted(libs.glob("*.jar"))]:
        with_stat = path.stat()
        name = str(path) if path in jvm_files else path.name
        digest.update(f"{name}\0{with_stat.st_size}\0{with_stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def archive_path(libs: Path, java: str) -> Path:
    """Where the archive of ``java`` running the jars of ``libs`` is (or goes): beside the jars, which a ``libs/*``
    class path leaves out (only ``.jar`` files match it), and which every unit already sees."""
    return libs / f"broker-academy-classes-{_key(libs, java)}.jsa"


def archive_flags(libs: Path, java: str) -> list[str]:
    """The JVM option that uses the archive when it is there; the one that makes it when the install step asks."""
    dump = os.environ.get(DUMP_VARIABLE)
    if dump:
        return [f"-XX:ArchiveClassesAtExit={dump}"]
    try:
        path = archive_path(libs, java)
    except OSError:  # no such java or jars: the launch says so itself
        return []
    return [f"-XX:SharedArchiveFile={path}"] if path.is_file() else []
