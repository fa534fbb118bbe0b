"""Apache Kafka 4 in KRaft mode: one process that is both broker and controller.

The jars come from Maven Central (scripts/fetch-jars.sh kafka), found through
``KAFKA_LIBS``, ``KAFKA_HOME/libs`` or the Broker Academy cache; the version is
pinned in :mod:`sandboxes.brokers.versions`. The broker speaks both consumer
group protocols (classic, and KIP-848's ``group.protocol=consumer``) and serves
share groups (KIP-932): a cluster formatted by Kafka 4.4 finalizes ``group.version=1``
and ``share.version=2`` by default, so no flag turns them on (and the
``group.coordinator.rebalance.protocols`` setting is deprecated since 4.4). The tap reads
every topic from its end with no consumer group, and follows the committed
offsets of every group: a commit that moves a group from A to B shows records
A..B-1 as consumed by that group.
"""

from .kind import CORE_JAR, VERSION, Kafka, image_files, kafka_libs
from .wire import metadata_release

__all__ = ["CORE_JAR", "VERSION", "Kafka", "image_files", "kafka_libs", "metadata_release"]
