"""RabbitMQ from Debian's package, one node per unit with all its state in the unit's folder.

The tap reads the firehose (``amq.rabbitmq.trace``), which RabbitMQ fills with a
copy of every publish and every delivery once tracing is on for a vhost; the
learner's queues are never read. Tracing is turned on at boot for ``/`` through
the ``rabbit.trace_vhosts`` application setting, so no ``rabbitmqctl`` call (and
no Erlang distribution round trip) is needed. The same tap queue hears the event
exchange (``amq.rabbitmq.event``: queues, bindings and consumers made or gone), so
that the panel's snapshot follows such changes at once instead of on a timer.

The snapshot asks the HTTP API only for what is current when asked: objects and
bindings (the schema database), message counts with ``disable_stats`` and
``enable_queue_totals`` (asked of each queue), consumers from ``/consumers`` plus
those the event exchange announced but the statistics have not caught up with.
"""

from .kind import RabbitMQ

__all__ = ["RabbitMQ"]
