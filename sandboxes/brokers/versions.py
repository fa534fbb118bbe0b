"""Which release of each broker the sandboxes run, and where the install step puts the ones it fetches.

The broker kinds, scripts/install.sh and the image recipes (sandboxes/images/)
all read this module, so a version changes here and nowhere else::

    python3 -m sandboxes.brokers.versions               # every pin, one "name version" a line
    python3 -m sandboxes.brokers.versions kafka         # 4.4.0
    python3 -m sandboxes.brokers.versions --home kafka  # /root/.cache/broker-academy/kafka-4.4.0

Plain standard library only: the agent imports it inside sandbox units, and
install.sh runs it with the system's python3 before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

#: The release each name stands for. ``kafka``, ``activemq``, ``nats`` and ``natscli`` are
#: fetched or built by the install step into :func:`home`; ``rabbitmq`` is Debian's package,
#: named by the release line it must report (the registries here serve no newer one).
PINNED: dict[str, str] = {
    # The newest 4.x on Maven Central; its broker runs on Java 17 (class files of Java 17).
    "kafka": "4.4.0",
    # ActiveMQ Classic 6 (Jakarta JMS, Spring 7, Java 17) from Maven Central's jars.
    "activemq": "6.3.1",
    # ActiveMQ's web console (its WAR, run by Jetty 11 in the broker's JVM): the newest release of
    # activemq-web-console that Maven Central serves here (none of 6.2 or 6.3 is).
    "activemq-console": "6.1.8",
    # Built with the machine's Go from the Go module proxy (go install).
    "nats": "2.15.2",
    "natscli": "0.5.0",
    "rabbitmq": "3.10",
}

#: Where the install step keeps what it fetches: one folder per name and version.
DEFAULT_CACHE = "/root/.cache/broker-academy"


def version(name: str) -> str:
    """The pinned release of ``name``; a name not pinned is a ``KeyError`` naming the known ones."""
    try:
        return PINNED[name]
    except KeyError:
        raise KeyError(f"no version pinned for {name!r}; known: {', '.join(PINNED)}") from None


def cache_dir() -> Path:
    """The install step's cache: ``BROKER_ACADEMY_CACHE``, else :data:`DEFAULT_CACHE`."""
    return Path(os.environ.get("BROKER_ACADEMY_CACHE") or DEFAULT_CACHE)


def home(name: str) -> Path:
    """The folder of the pinned release of ``name`` in the cache (``<cache>/<name>-<version>``)."""
    return cache_dir() / f"{name}-{version(name)}"


def is_pinned(name: str, reported: str | None) -> bool:
    """True when the version a running broker reports agrees with the pinned one, to the precision of the shorter.

    A broker may say less than the pin (Kafka's protocol tells the release line, ``4.4``,
    not ``4.4.0``) or more (Debian's RabbitMQ ``3.10.8`` for the line ``3.10``); at least
    major and minor must be there and agree.
    """
    if not reported:
        return False
    pinned, said = version(name).split("."), reported.split(".")
    common = min(len(pinned), len(said))
    return common >= 2 and pinned[:common] == said[:common]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m sandboxes.brokers.versions", description=__doc__.split("\n")[0])
    parser.add_argument("name", nargs="?", help=f"one of {', '.join(PINNED)}; all when left out")
    parser.add_argument("--home", action="store_true", help="print the folder the install step keeps it in instead")
    args = parser.parse_args(argv)
    if args.name is None:
        for name, pinned in PINNED.items():
            print(name, home(name) if args.home else pinned)
        return 0
    if args.name not in PINNED:
        parser.error(f"unknown name {args.name!r}; known: {', '.join(PINNED)}")
    print(home(args.name) if args.home else version(args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
