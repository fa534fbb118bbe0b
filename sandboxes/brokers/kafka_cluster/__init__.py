"""Apache Kafka 4 as a cluster of three KRaft nodes (broker and controller each) in one unit.

A variant of :mod:`sandboxes.brokers.kafka` for the replication part of the course: the
same jars, JVM flags and settings, three replicas by default, and a supervisor
(supervisor.py) that lets a cell or the topology panel stop and start one node, so that
leaders move, the ISR shrinks and grows, and a producer with ``acks=all`` is refused
when fewer than ``min.insync.replicas`` replicas are in sync.
"""

from ..kafka import image_files  # its image holds the same jars as a single broker's
from .kind import NODES, KafkaCluster

__all__ = ["NODES", "KafkaCluster", "image_files"]
