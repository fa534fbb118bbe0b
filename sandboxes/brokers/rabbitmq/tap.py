"""The RabbitMQ tap: the firehose for messages, the event exchange for queues, bindings and consumers."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from sandboxes.brokers.base import Emit
from sandboxes.brokers.tap import ReconnectingTap, tap_watching_mark
from sandboxes.events import Direction, Event

logger = logging.getLogger(__name__)

TRACE_EXCHANGE = "amq.rabbitmq.trace"
EVENT_EXCHANGE = "amq.rabbitmq.event"
#: What the tap hears from the event exchange: the changes the panel draws (not connections or channels).
EVENT_KEYS = ("queue.*", "binding.*", "consumer.*", "exchange.*")
TAP_NAME = "broker-academy-tap"
TAP_QUEUE_PREFIX = "broker-academy.tap."
# Loopback-only by RabbitMQ's default, and everything in a unit is loopback.
USER, PASSWORD = "guest", "guest"
#: How long a consumer announced by the event exchange is counted without the HTTP API listing it:
#: longer than the management agent takes to fold a new consumer into its statistics (one second, see prepare()).
NEW_CONSUMER_S = 8.0


Consumer = tuple[str, str, str]  # vhost, queue, consumer tag


class Announced:
    """Consumers the event exchange announced, kept until the HTTP API lists them (it folds new ones in a second later).

    Filled by the tap's thread, read by the snapshot's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: dict[Consumer, float] = {}

    def created(self, consumer: Consumer) -> None:
        with self._lock:
            self._since[consumer] = time.monotonic()

    def deleted(self, consumer: Consumer) -> None:
        with self._lock:
            self._since.pop(consumer, None)

    def not_yet_listed(self, listed: set[Consumer]) -> set[Consumer]:
        """The announced consumers missing from ``listed``; those listed (or announced too long ago) are forgotten."""
        now = time.monotonic()
        with self._lock:
            for consumer, since in list(self._since.items()):
                if consumer in listed or now - since > NEW_CONSUMER_S:
                    del self._since[consumer]
            return set(self._since)


class RabbitMQTap(ReconnectingTap):
    """One exclusive queue bound to the firehose and the event exchange, consumed until the connection fails."""

    broker: ClassVar[str] = "rabbitmq"
    watches_on_connect: ClassVar[bool] = False  # the firehose has no past: a publish before the bind is lost
    conn: Any = None

    def __init__(self, *, announced: Announced, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.announced = announced

    def connect(self) -> None:
        import pika  # imported here: the platform side never needs it

        params = pika.ConnectionParameters(
            host=self.host,
            port=self.ports["amqp"],
            credentials=pika.PlainCredentials(USER, PASSWORD),
            client_properties={"connection_name": TAP_NAME},
            connection_attempts=1,
            socket_timeout=2,
            heartbeat=30,
        )
        self.conn = pika.BlockingConnection(params)

    def watch(self) -> None:
        channel = self.conn.channel()
        queue = TAP_QUEUE_PREFIX + secrets.token_hex(4)
        channel.queue_declare(queue, exclusive=True, auto_delete=True, arguments={"x-max-length": 100_000})
        channel.queue_bind(queue, TRACE_EXCHANGE, "#")
        for key in EVENT_KEYS:
            channel.queue_bind(queue, EVENT_EXCHANGE, key)
        tap_watching_mark()

        def on_message(_ch: Any, method: Any, props: Any, body: bytes) -> None:
            if method.exchange == EVENT_EXCHANGE:
                _on_event(self.emit, self.announced, method.routing_key, props.headers or {})
            else:
                _on_trace(self.emit, method, props, body)

        channel.basic_consume(queue, on_message, auto_ack=True)
        while not self.stop.is_set():
            self.conn.process_data_events(time_limit=0.2)

    def close(self) -> None:
        if self.conn is not None and self.conn.is_open:
            try:
                self.conn.close()
            except Exception as exc:  # closing a broken connection may fail; there is nothing left to do then
                logger.debug("rabbitmq tap: close failed: %r", exc)
        self.conn = None


def _on_event(emit: Emit, announced: Announced, key: str, headers: dict[str, Any]) -> None:
    """Note a consumer made or gone, and ask for a fresh snapshot on any change that is not the tap's own."""
    vhost = _str(headers.get("vhost", "/"))
    if key.startswith("consumer."):
        name = _str(headers.get("queue", ""))
    elif key.startswith("binding."):
        name = _str(headers.get("destination_name", ""))
    else:
        name = _str(headers.get("name", ""))
    if name.startswith(TAP_QUEUE_PREFIX):
        return
    if key.startswith("consumer."):
        consumer = (vhost, name, _str(headers.get("consumer_tag", "")))
        if key == "consumer.created":
            announced.created(consumer)
        else:
            announced.deleted(consumer)
    emit(None)


def _on_trace(emit: Emit, method: Any, props: Any, body: bytes) -> None:
    """Turn one firehose copy into an event: ``publish.<exchange>`` or ``deliver.<queue>``."""
    what, _, name = method.routing_key.partition(".")
    if what == "deliver" and name.startswith(TAP_QUEUE_PREFIX):
        return  # the event exchange's notices reaching the tap: the tap's own traffic
    trace = props.headers or {}
    original = trace.get("properties") or {}
    keys = trace.get("routing_keys") or []
    routing_key = keys[0] if keys else ""
    timestamp = original.get("timestamp")
    detail: dict[str, Any] = {
        "routing_key": routing_key,
        "exchange": trace.get("exchange_name") or "(default)",
    }
    if trace.get("vhost") and trace.get("vhost") != "/":
        detail["vhost"] = trace["vhost"]
    direction: Direction
    if what == "publish":
        direction = "produced"
        destination = name or "(default)"
        routed = trace.get("routed_queues")
        if routed is not None:
            detail["routed_queues"] = ",".join(_str(q) for q in routed)
    elif what == "deliver":
        direction = "consumed"
        destination = name
        detail["redelivered"] = "true" if trace.get("redelivered") else "false"
    else:
        return
    for prop in ("message_id", "correlation_id", "reply_to", "content_type", "type"):
        if original.get(prop):
            detail[prop] = _str(original[prop])
    emit(
        Event.build(
            broker="rabbitmq",
            direction=direction,
            destination=destination,
            payload=body,
            headers={k: _str(v) for k, v in (original.get("headers") or {}).items()},
            detail=detail,
            timestamp_ms=_millis(timestamp),
        )
    )


def _millis(stamp: Any) -> int | None:
    """AMQP timestamps are whole seconds; pika gives a datetime or an int."""
    if isinstance(stamp, int):
        return stamp * 1000
    if isinstance(stamp, datetime):
        return int(stamp.replace(tzinfo=stamp.tzinfo or UTC).timestamp() * 1000)
    return None


def _str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value) if not isinstance(value, (dict, list)) else json.dumps(value, default=str)
