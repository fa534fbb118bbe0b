"""NATS with JetStream: a nats-server built from its Go module, with a store and limits of its own.

The server (and the ``nats`` command-line tool) are built by scripts/build-nats.sh
with the machine's Go into the Broker Academy cache, found through ``NATS_SERVER``
or the cache; the versions are pinned in :mod:`sandboxes.brokers.versions`.

Produced messages are seen by a ``>`` subscription; consumed ones by following
JetStream consumers' positions (ack floor, or delivered for ``AckNone``),
because core NATS has no notion of "consumed" to observe. The same ``>``
subscription also sees JetStream deliveries (their reply subject is a
``$JS.ACK.`` token naming stream and sequence): those are kept in a small cache
so a work-queue message can still be shown after the stream has deleted it.
"""

from .kind import Nats, image_files, nats_cli, nats_server

__all__ = ["Nats", "image_files", "nats_cli", "nats_server"]
