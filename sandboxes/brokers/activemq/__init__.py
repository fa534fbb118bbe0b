"""ActiveMQ Classic 6 from Maven Central's jars, one broker per unit with its own XML and KahaDB.

The jars (broker, KahaDB, STOMP, the Spring XML support, XStream and Jettison,
Log4j 2) are fetched by scripts/fetch-jars.sh activemq into the Broker Academy
cache, found through ``ACTIVEMQ_LIBS`` or the cache; the version is pinned in
:mod:`sandboxes.brokers.versions`.

Watching without consuming: every destination has ``advisoryForDelivery`` and
``advisoryForConsumed`` with ``includeBodyForAdvisory``, so the broker publishes
a copy of each message it receives (``ActiveMQ.Advisory.MessageDelivered.*``)
and of each one a client acknowledges (``ActiveMQ.Advisory.MessageConsumed.*``).
The tap subscribes to those two advisory topics over STOMP; queues are never
browsed or read. "Delivered" covers queues and topics alike, so neither mirrored
queues nor a ``>`` topic subscription is needed (they would double every
message). ActiveMQ sends no consumption advisory for non-durable topic
subscribers, so that one case is inferred from topic counters (see
:class:`_TopicFollower`). Advisory bodies reach STOMP as JSON made by XStream and
Jettison, which is why those two jars are fetched with the broker.

The side panel's counters come from the statistics plugin
(``ActiveMQ.Statistics.Destination.>``), asked over STOMP with a reply queue.
"""

from .kind import BROKER_JAR, VERSION, ActiveMQ, activemq_libs, image_files

__all__ = ["BROKER_JAR", "VERSION", "ActiveMQ", "activemq_libs", "image_files"]
