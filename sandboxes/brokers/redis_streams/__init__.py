"""Redis Streams: Debian's redis-server, and a tap that reads what XADD stored and XREADGROUP delivered.

The tap only reads (SCAN, XINFO, XRANGE), so it never takes an entry from a
group or acknowledges one. Entries added are read from each stream's end as
they come; entries delivered to a consumer group are the ones between the
group's previous and current ``last-delivered-id``. A plain XREAD (no group)
leaves no trace in the broker, so it is not shown. The image's Dockerfile is
beside this file (sandboxes/images/build.py finds it).
"""

from .kind import Redis

__all__ = ["Redis"]
